"""The status, logs and delete targets with the real make and kubectl, against a fake cluster.

tests/fakes/apiserver.py answers on 127.0.0.1 as a Kubernetes API server does, as a
cluster with every optional controller's CRDs (JobSet, Katib, Trainer v2,
training-operator) and as one with none; each test records which requests reach it.
tests/fakes/cluster_runs.py puts a run in it as the controllers would leave it.

kubectl deletes with `propagationPolicy: Background` in the body (kubernetes/kubectl
v0.32.4, pkg/cmd/delete/delete_flags.go, `--cascade` defaults to background), which
matters: for batch/v1 the API server's own default orphans a Job's pods
(kubernetes/kubernetes, pkg/registry/batch/job/strategy.go,
`DefaultGarbageCollectionPolicy`).
"""

from __future__ import annotations

import pytest

from tests.fakes.apiserver import FakeCluster
from tests.fakes.cluster_runs import (
    KUBECTL,
    LAYOUTS,
    NS,
    RUN_KINDS,
    VARIANTS,
    calls,
    last_error,
    make,
    put_distributed,
    put_run,
    put_tune,
    serves,
)

# End to end: a server, and make and kubectl for each call.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(KUBECTL is None, reason="kubectl is not installed"),
]


@pytest.fixture(params=sorted(VARIANTS))
def cluster(request):
    with FakeCluster(crds=VARIANTS[request.param]) as fake:
        yield fake


@pytest.mark.parametrize("kind", sorted(RUN_KINDS))
def test_status_lists_the_kinds_runs_and_their_pods_exit_codes(cluster, tmp_path, kind):
    api, plural, _, pod_name = RUN_KINDS[kind]
    terminated = {"exitCode": 137, "reason": "OOMKilled"}
    failed = {"phase": "Failed", "containerStatuses": [{"name": "c", "restartCount": 2,
              "state": {"terminated": terminated}, "lastState": {"terminated": terminated}}]}  # fmt: skip
    served = serves(cluster, kind)
    if served:
        put_run(cluster, tmp_path, kind, **failed)
    result = make(cluster, tmp_path, "status", f"KIND={kind}")
    selector = "labelSelector=app.kubernetes.io/part-of=kuka-grasp"
    if not served:
        assert result.returncode != 0
        assert last_error(result) == f'error: the server doesn\'t have a resource type "{plural}"'
        assert calls(cluster) == []
        return
    assert result.returncode == 0, result.stderr
    assert calls(cluster) == [
        f"GET {api}/namespaces/{NS}/{plural}?{selector}",
        f"GET /api/v1/namespaces/{NS}/pods?{selector}",
    ]
    assert "kuka-train-r1" in result.stdout
    row = next(line.split() for line in result.stdout.splitlines() if line.startswith(pod_name))
    assert row == [pod_name, "Failed", "2", "137", "OOMKilled", "OOMKilled"]


@pytest.mark.parametrize("kind", sorted(RUN_KINDS))
def test_logs_follow_the_runs_pod_only(cluster, tmp_path, kind):
    """logs asks for pods only: on a cluster without the kind's CRD it finds them all the same."""
    _, _, label, pod_name = RUN_KINDS[kind]
    put_run(cluster, tmp_path, kind, run="r2")
    cluster.logs[(NS, pod_name.replace("r1", "r2"))] = "the other run\n"
    the_pod = put_run(cluster, tmp_path, kind)
    cluster.logs[(NS, pod_name)] = "".join(f"step {i}\n" for i in range(150))
    result = make(cluster, tmp_path, "logs", f"KIND={kind}", "RUN=r1")
    assert result.returncode == 0, result.stderr
    container = the_pod["spec"]["containers"][0]["name"]
    assert calls(cluster) == [
        f"GET /api/v1/namespaces/{NS}/pods?labelSelector={label}=kuka-train-r1",
        f"GET /api/v1/namespaces/{NS}/pods/{pod_name}/log"
        f"?container={container}&follow=true&tailLines=100",
    ]
    assert result.stdout.splitlines()[-100:] == [f"step {i}" for i in range(50, 150)]
    assert "the other run" not in result.stdout


@pytest.mark.parametrize("kind", sorted(RUN_KINDS))
def test_delete_removes_the_run_and_its_pods_in_the_background(cluster, tmp_path, kind):
    api, plural, _, _ = RUN_KINDS[kind]
    if not serves(cluster, kind):
        result = make(cluster, tmp_path, "delete", f"KIND={kind}", "RUN=r1")
        assert result.returncode != 0
        assert last_error(result) == f'error: the server doesn\'t have a resource type "{plural}"'
        assert calls(cluster) == []
        return
    put_run(cluster, tmp_path, kind)
    put_run(cluster, tmp_path, kind, run="r2")
    result = make(cluster, tmp_path, "delete", f"KIND={kind}", "RUN=r1")
    assert result.returncode == 0, result.stderr
    path = f"{api}/namespaces/{NS}/{plural}/kuka-train-r1"
    # kubectl deletes, then waits until the object is gone (--wait, true by default).
    assert calls(cluster) == [f"DELETE {path}", f"GET {path}"]
    delete = next(r for r in cluster.requests if r["method"] == "DELETE")
    assert delete["body"]["propagationPolicy"] == "Background"
    assert cluster.names(plural) == ["kuka-train-r2"]
    # Again: nothing left to delete, and --ignore-not-found makes that no error.
    since = len(cluster.requests)
    again = make(cluster, tmp_path, "delete", f"KIND={kind}", "RUN=r1")
    assert again.returncode == 0 and again.stderr == "", again.stderr
    assert calls(cluster, since) == [f"DELETE {path}", f"GET {path}"]


@pytest.mark.parametrize("variant,layout", LAYOUTS)
def test_status_distributed_on_either_layout_and_cluster(tmp_path, variant, layout):
    with FakeCluster(crds=VARIANTS[variant]) as cluster:
        objects = put_distributed(cluster, tmp_path, layout)
        result = make(cluster, tmp_path, "status-distributed", f"LAYOUT={layout}")
    assert result.returncode == 0, result.stderr
    selector = "labelSelector=app.kubernetes.io/component=distributed"
    lists = [] if variant == "no-crds" else [
        f"GET /apis/jobset.x-k8s.io/v1alpha2/namespaces/{NS}/jobsets?{selector}"]  # fmt: skip
    lists += [
        f"GET /apis/apps/v1/namespaces/{NS}/deployments?{selector}",
        f"GET /apis/batch/v1/namespaces/{NS}/jobs?{selector}",
        f"GET /api/v1/namespaces/{NS}/pods?labelSelector=app.kubernetes.io/name in "
        "(kuka-reverb,kuka-collect,kuka-learn)",
    ]
    assert calls(cluster) == lists
    for obj in objects:
        if obj["kind"] in ("JobSet", "Job") or obj["metadata"]["name"] == "kuka-reverb":
            assert obj["metadata"]["name"] in result.stdout
    if variant == "no-crds":
        assert "note: the cluster has no jobsets.jobset.x-k8s.io" in result.stdout


@pytest.mark.parametrize("variant,layout", LAYOUTS)
def test_delete_distributed_deletes_the_runs_objects_only(tmp_path, variant, layout):
    with FakeCluster(crds=VARIANTS[variant]) as cluster:
        objects = put_distributed(cluster, tmp_path, layout)
        result = make(cluster, tmp_path, "delete-distributed")
    assert result.returncode == 0, result.stderr
    labelled = {
        obj["metadata"]["name"]
        for obj in objects
        if obj["metadata"]["labels"].get("app.kubernetes.io/component") == "distributed"
    }
    deletes = [r for r in cluster.requests if r["method"] == "DELETE"]
    assert {r["path"].rsplit("/", 1)[1] for r in deletes} == labelled
    assert all(r["body"]["propagationPolicy"] == "Background" for r in deletes)
    left = {obj["metadata"]["name"] for obj in cluster.objects.values()} - {NS}
    # What the run shares with the others stays: the ServiceAccount, TensorBoard, policies.
    assert left == {obj["metadata"]["name"] for obj in objects} - labelled
    assert {"kuka-trainer", "tensorboard", "kuka-grasp-no-ingress"} <= left
    if variant == "no-crds":
        assert not any("/jobsets" in call for call in calls(cluster))


def test_status_tune_shows_the_experiment_and_its_trials_only(cluster, tmp_path):
    put_tune(cluster, tmp_path, "t1")
    put_tune(cluster, tmp_path, "t2")
    result = make(cluster, tmp_path, "status-tune", "RUN=t1")
    katib = "/apis/kubeflow.org/v1beta1"
    if "experiments.kubeflow.org" not in {r.name for r in cluster.resources}:
        assert result.returncode != 0
        assert last_error(result) == 'error: the server doesn\'t have a resource type "experiments"'
        assert calls(cluster) == []
        return
    assert result.returncode == 0, result.stderr
    assert calls(cluster) == [
        f"GET {katib}/namespaces/{NS}/experiments/kuka-tune-t1",
        f"GET {katib}/namespaces/{NS}/trials?labelSelector=katib.kubeflow.org/experiment=kuka-tune-t1",
    ]
    assert "kuka-tune-t1-x7k2p9qd" in result.stdout and "kuka-tune-t2" not in result.stdout


def test_delete_tune_deletes_the_experiment_only(cluster, tmp_path):
    put_tune(cluster, tmp_path, "t1")
    put_tune(cluster, tmp_path, "t2")
    result = make(cluster, tmp_path, "delete-tune", "RUN=t1")
    if "experiments.kubeflow.org" not in {r.name for r in cluster.resources}:
        assert result.returncode != 0
        assert last_error(result) == 'error: the server doesn\'t have a resource type "experiments"'
        return
    assert result.returncode == 0, result.stderr
    path = f"/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/kuka-tune-t1"
    assert calls(cluster) == [f"DELETE {path}", f"GET {path}"]
    # Katib's trials belong to the Experiment: the garbage collector takes them in the background.
    assert cluster.requests[-2]["body"]["propagationPolicy"] == "Background"
    assert cluster.names("experiments") == ["kuka-tune-t2"]


@pytest.mark.parametrize("aggregated", [True, False])
def test_kubectl_discovers_the_cluster_in_either_form(tmp_path, aggregated):
    """kubectl 1.32 asks for aggregated discovery first and takes the legacy form too."""
    with FakeCluster(aggregated=aggregated) as cluster:
        result = make(cluster, tmp_path, "status-distributed")
    assert result.returncode == 0, result.stderr
    asked = {r["path"] for r in cluster.requests}
    first = next(r for r in cluster.requests if r["path"] == "/apis")
    assert first["accept"].startswith(
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    )
    per_group = {"/api/v1", "/apis/jobset.x-k8s.io/v1alpha2", "/apis/batch/v1"}
    assert per_group <= asked if not aggregated else not per_group & asked
    assert any("/jobsets" in call for call in calls(cluster))


@pytest.mark.parametrize("aggregated", [True, False])
def test_an_api_server_that_does_not_answer_does_not_stop_them(tmp_path, aggregated):
    """GKE serves metrics.k8s.io through an aggregated API server. When it is down, aggregated
    discovery marks it Stale (client-go v0.32.4, discovery/aggregated_discovery.go,
    `convertAPIGroup`), and its legacy group version answers 503: kubectl api-resources then
    lists the rest and exits 1 (kubectl v0.32.4, pkg/cmd/apiresources/apiresources.go)."""
    stale = ("metrics.k8s.io/v1beta1",)
    with FakeCluster(crds=(), stale=stale, aggregated=aggregated) as cluster:
        put_distributed(cluster, tmp_path, "jobs")
        result = make(cluster, tmp_path, "delete-distributed")
    assert result.returncode == 0, result.stderr
    assert [c.split()[0] for c in calls(cluster)].count("DELETE") == 6
