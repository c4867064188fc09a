"""`make submit` (and study, tune, submit-distributed) with a run that is already on the cluster.

kubectl apply would leave such a run as it is, or refuse a changed spec: a Job's pod
template is immutable (kubernetes/kubernetes v1.32, pkg/apis/batch/validation/validation.go,
`ValidateJobSpecUpdate`, `validatePodTemplateUpdate`), Katib lets only an Experiment's trial counts change
(kubeflow/katib v0.19.0, pkg/webhook/v1beta1/experiment/validator/validator.go,
`ValidateExperiment`), and the distributed roles' names are fixed. So each target asks
the fake cluster (tests/fakes/apiserver.py) first, and must stop in one line before it
writes an overlay or builds, having sent nothing but GETs; DRY_RUN=1 sends nothing.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import ROOT, make_env
from tests.fakes.apiserver import FakeCluster
from tests.fakes.cluster_runs import (
    BUCKET,
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
    set_status,
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


@pytest.fixture
def repo(tmp_path) -> str:
    """A copy of what the submit targets read: one that went on would write its overlay here."""
    copy = tmp_path / "repo"
    ignore = shutil.ignore_patterns("__pycache__", "local")
    for name in ("deploy", "trainer", "k8s"):
        shutil.copytree(os.path.join(ROOT, name), copy / name, ignore=ignore)
    for name in ("Makefile", "build.sh"):
        shutil.copy2(os.path.join(ROOT, name), copy / name)
    return str(copy)


def submit(cluster, tmp_path, repo, target: str, *args: str) -> subprocess.CompletedProcess:
    """`make TARGET` in the copy; it must stop before it writes or builds anything."""
    result = make(cluster, tmp_path, target, f"BUCKET={BUCKET}", "TAG=t", *args, cwd=repo)
    assert not os.path.exists(os.path.join(repo, "k8s", "overlays", "local"))
    assert "build.sh" not in result.stdout
    assert all(r["method"] == "GET" for r in cluster.requests)
    return result


# A run's status as each controller writes it, and the state the message gives.
CONDITIONS = {
    "job": ({"conditions": [{"type": "SuccessCriteriaMet", "status": "True"},
                            {"type": "Complete", "status": "True"}]}, "Complete"),
    "tfjob": ({"conditions": [{"type": "Created", "status": "True"},
                              {"type": "Running", "status": "True"}]}, "Running"),
    "trainjob": ({}, "no status yet"),
}  # fmt: skip


@pytest.mark.parametrize("kind", sorted(RUN_KINDS))
def test_submit_stops_when_the_run_is_on_the_cluster(cluster, tmp_path, repo, kind):
    """kubectl apply would leave the run as it is, or a changed STEPS would hit an immutable field."""
    api, plural, _, _ = RUN_KINDS[kind]
    resource = f"{plural}.{api.split('/')[2]}"
    if not serves(cluster, kind):
        result = submit(cluster, tmp_path, repo, "submit", "RUN=r1", f"KIND={kind}")
        assert result.returncode != 0
        assert last_error(result) == (
            f"make submit: error: the cluster serves no {resource}: its controller is not "
            "installed (kubectl api-resources lists what it serves)"
        )
        assert calls(cluster) == []
        return
    put_run(cluster, tmp_path, kind)
    status, state = CONDITIONS[kind]
    set_status(cluster, plural, "kuka-train-r1", status)
    result = submit(cluster, tmp_path, repo, "submit", "RUN=r1", f"KIND={kind}", "STEPS=2000000")
    assert result.returncode != 0
    resource_kind = {"job": "Job", "tfjob": "TFJob", "trainjob": "TrainJob"}[kind]
    kind_arg = "" if kind == "job" else f" KIND={kind}"
    assert last_error(result) == (
        f"make submit: error: {resource_kind} kuka-train-r1 is already in namespace {NS} "
        f"({state}); kubectl apply would leave it as it is or refuse the change: make delete "
        f"RUN=r1{kind_arg}, then make submit RUN=r1 again to go on from its last checkpoint in "
        f"gs://{BUCKET}/runs/r1, or choose another RUN"
    )
    assert calls(cluster) == [f"GET {api}/namespaces/{NS}/{plural}/kuka-train-r1"]
    assert (
        result.stdout
        == f"+ kubectl -n {NS} get {resource}/kuka-train-r1 --ignore-not-found -o json\n"
    )


def test_tune_stops_when_its_experiment_is_on_the_cluster(cluster, tmp_path, repo):
    """Katib lets an Experiment's trial counts change, nothing else (kubeflow/katib v0.19.0,
    pkg/webhook/v1beta1/experiment/validator/validator.go, `ValidateExperiment`)."""
    if "experiments.kubeflow.org" not in {r.name for r in cluster.resources}:
        result = submit(cluster, tmp_path, repo, "tune", "RUN=t1")
        assert last_error(result).startswith(
            "make tune: error: the cluster serves no experiments.kubeflow.org: "
        )
        return
    put_tune(cluster, tmp_path, "t1")
    running = {"conditions": [{"type": "Created", "status": "True"},
                              {"type": "Running", "status": "True"}]}  # fmt: skip
    set_status(cluster, "experiments", "kuka-tune-t1", running)
    result = submit(cluster, tmp_path, repo, "tune", "RUN=t1", "STEPS=900000")
    assert last_error(result) == (
        f"make tune: error: Experiment kuka-tune-t1 is already in namespace {NS} (Running); "
        f"Katib lets only its trial counts change (kubectl -n {NS} edit experiments.kubeflow.org "
        "kuka-tune-t1): make delete-tune RUN=t1 first (the trials stay in the bucket), or "
        "choose another RUN"
    )
    assert calls(cluster) == [
        f"GET /apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/kuka-tune-t1"
    ]


def test_study_stops_when_one_of_its_runs_is_on_the_cluster(tmp_path, repo):
    with FakeCluster() as cluster:
        put_run(cluster, tmp_path, "job", run="s-s2")
        result = submit(cluster, tmp_path, repo, "study", "RUN=s", "SEEDS=3")
    assert last_error(result).startswith(
        f"make study: error: Job kuka-train-s-s2 is already in namespace {NS} (no status yet); "
        "kubectl apply would leave it as it is or refuse the change: make delete RUN=s-sN for "
        "each seed N, then make study RUN=s again"
    )
    jobs = f"GET /apis/batch/v1/namespaces/{NS}/jobs"
    assert [c for c in calls(cluster) if c.startswith(jobs)] == [
        f"{jobs}/kuka-train-s-s{seed}" for seed in (1, 2, 3)
    ]


@pytest.mark.parametrize("variant,layout", LAYOUTS)
def test_submit_distributed_stops_while_a_distributed_run_is_on(tmp_path, repo, variant, layout):
    """The roles' names are fixed: a namespace holds one distributed run."""
    with FakeCluster(crds=VARIANTS[variant]) as cluster:
        put_distributed(cluster, tmp_path, layout)
        result = submit(cluster, tmp_path, repo, "submit-distributed", "RUN=d2", f"LAYOUT={layout}")
    first = "JobSet kuka-distributed" if layout == "jobset" else "Deployment kuka-reverb"
    assert last_error(result) == (
        f"make submit-distributed: error: {first} is already in namespace {NS} (no status yet); "
        "a namespace holds one distributed run: make delete-distributed once it is done, then "
        "make submit-distributed again (the same RUN goes on from its last checkpoint in the "
        "bucket)"
    )
    selector = "labelSelector=app.kubernetes.io/component=distributed"
    jobsets = [] if variant == "no-crds" else [
        f"GET /apis/jobset.x-k8s.io/v1alpha2/namespaces/{NS}/jobsets?{selector}"]  # fmt: skip
    assert calls(cluster) == [
        *jobsets,
        f"GET /apis/apps/v1/namespaces/{NS}/deployments?{selector}",
        f"GET /apis/batch/v1/namespaces/{NS}/jobs?{selector}",
    ]


def test_submit_distributed_needs_the_jobset_crd_for_its_layout(tmp_path, repo):
    with FakeCluster(crds=()) as cluster:
        result = submit(cluster, tmp_path, repo, "submit-distributed", "RUN=d2")
    assert last_error(result).startswith(
        "make submit-distributed: error: the cluster serves no jobsets.jobset.x-k8s.io: "
    )
    assert calls(cluster) == []


def test_a_new_run_passes_the_check(cluster, tmp_path):
    kubeconfig = cluster.kubeconfig(str(tmp_path / "kubeconfig"))
    env = make_env(KUBECONFIG=kubeconfig, KUBECACHEDIR=str(tmp_path / "kube-cache"))
    argv = ["python3", "-m", "deploy.cluster", "--prog=make submit", "absent", f"--namespace={NS}",
            "--hint=h", "jobs.batch/kuka-train-r9"]  # fmt: skip
    result = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and result.stderr == "", result.stderr
    assert calls(cluster)[0] == f"GET /apis/batch/v1/namespaces/{NS}/jobs/kuka-train-r9"
    assert all(r["method"] == "GET" for r in cluster.requests)


@pytest.mark.parametrize(
    "target",
    [
        ["submit", "RUN=r1"],
        ["submit", "RUN=r1", "KIND=tfjob"],
        ["study", "RUN=s", "SEEDS=2"],
        ["tune", "RUN=t1"],
        ["submit-distributed", "RUN=d1"],
        ["status-distributed"],
        ["delete-distributed"],
    ],
)
def test_dry_run_contacts_nothing(tmp_path, repo, target):
    with FakeCluster(crds=()) as cluster:
        put_run(cluster, tmp_path, "job")
        result = make(
            cluster, tmp_path, *target, "DRY_RUN=1", f"BUCKET={BUCKET}", "TAG=t", cwd=repo
        )
    assert result.returncode == 0, result.stderr
    assert cluster.requests == []
    assert any(line.startswith(f"kubectl -n {NS} ") for line in result.stdout.splitlines())
    assert not os.path.exists(os.path.join(repo, "k8s", "overlays", "local"))


def test_tune_labels_a_namespace_only_where_katibs_label_is_missing(tmp_path):
    """A Kubeflow profile's namespace carries Katib's label already, and its users may not
    patch namespaces: `make tune` then only reads it (kubeflow/katib v0.19.0,
    manifests/v1beta1/components/webhook/webhooks.yaml, the pod webhook's namespaceSelector)."""
    key = "katib.kubeflow.org/metrics-collector-injection"
    with FakeCluster(crds=VARIANTS["crds"]) as cluster:
        labels = {key: "enabled"}
        cluster.add({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NS, "labels": labels}})  # fmt: skip
        env = make_env(
            KUBECONFIG=cluster.kubeconfig(str(tmp_path / "kubeconfig")), HOME=str(tmp_path)
        )
        result = subprocess.run(
            [sys.executable, "-m", "deploy.cluster", "label", f"--namespace={NS}", f"{key}=enabled"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert f"namespace {NS} has {key}=enabled already" in result.stdout
        assert calls(cluster) == [f"GET /api/v1/namespaces/{NS}"]
