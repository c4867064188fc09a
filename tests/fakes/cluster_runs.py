"""A run on the fake cluster, as the Makefile's kubectl targets see it (tests/test_kubectl*.py).

The objects are what the targets' own overlays render (deploy.overlay, then the real
`kubectl kustomize`), and the pods are those the controllers make of them, with the
label each controller puts on its pods:

- a Job's pods: `batch.kubernetes.io/job-name` (kubernetes/api v0.32.4,
  batch/v1/types.go, `JobNameLabel`);
- a TFJob's: `training.kubeflow.org/job-name` (kubeflow/trainer v1.9.3, the
  training-operator, pkg/apis/kubeflow.org/v1/common_types.go, `JobNameLabel`);
- a TrainJob's: `jobset.sigs.k8s.io/jobset-name` (kubernetes-sigs/jobset v0.12.0,
  api/jobset/v1alpha2/jobset_types.go, `JobSetNameKey`) with the TrainJob's name, since
  Trainer names the JobSet after it (kubeflow/trainer v2.3.0,
  pkg/runtime/framework/plugins/jobset/jobset.go, `Build`);
- a Katib trial: `katib.kubeflow.org/experiment` (kubeflow/katib v0.19.0,
  pkg/controller.v1beta1/consts/const.go, `LabelExperimentName`).
"""

from __future__ import annotations

import contextlib
import copy
import io
import shutil
import subprocess

import yaml

from deploy import kinds, overlay
from tests.conftest import ROOT, make_env
from tests.fakes.apiserver import FakeCluster
from tests.fakes.discovery import ALL_CRDS

KUBECTL = shutil.which("kubectl")
NS = "rl"
BUCKET = "kuka-test-bucket"
# KIND: (the run object's API path, its plural), the label on its pods, a pod's name.
RUN_KINDS = {
    "job": ("/apis/batch/v1", "jobs", "batch.kubernetes.io/job-name", "kuka-train-r1-x7k2p"),
    "tfjob": (
        "/apis/kubeflow.org/v1",
        "tfjobs",
        "training.kubeflow.org/job-name",
        "kuka-train-r1-worker-0",
    ),
    "trainjob": (
        "/apis/trainer.kubeflow.org/v1alpha1",
        "trainjobs",
        "jobset.sigs.k8s.io/jobset-name",
        "kuka-train-r1-node-0-0-q4w8z",
    ),
}
VARIANTS = {"crds": ALL_CRDS, "no-crds": frozenset()}
# (cluster, LAYOUT) pairs a distributed run can be in: a JobSet needs its CRD.
LAYOUTS = [("crds", "jobset"), ("crds", "jobs"), ("no-crds", "jobs")]


def make(
    cluster: FakeCluster, tmp_path, target: str, *args: str, cwd: str = ROOT
) -> subprocess.CompletedProcess:
    """Runs `make TARGET` as a user does, with kubectl pointed at the fake cluster."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env = make_env(
        KUBECONFIG=cluster.kubeconfig(str(tmp_path / "kubeconfig")),
        KUBECACHEDIR=str(tmp_path / "kube-cache"),
        HOME=str(home),
    )
    argv = ["make", "--no-print-directory", target, f"NAMESPACE={NS}", "PROJECT=p", *args]
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def calls(cluster: FakeCluster, since: int = 0) -> list[str]:
    """The requests after discovery, as "METHOD path?query" (kubectl's paging limit left out)."""
    out = []
    for r in cluster.requests[since:]:
        parts = r["path"].split("/")
        discovery = r["path"] in ("/version", "/api", "/apis", "/api/v1") or (
            parts[1:2] == ["apis"] and len(parts) == 4
        )
        if not discovery:
            query = "&".join(f"{k}={v}" for k, v in sorted(r["query"].items()) if k != "limit")
            out.append(f"{r['method']} {r['path']}" + (f"?{query}" if query else ""))
    return out


def rendered(tmp_path, kind: str, name: str, run: str) -> list[dict]:
    """The objects a target's overlay renders: deploy.overlay, then the real kubectl kustomize."""
    args = [f"--kind={kind}", f"--name={name}", f"--run={run}", "--image=i", "--tag=t"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert overlay.main([*args, f"--bucket={BUCKET}", f"--out={tmp_path}"]) == 0
    out = subprocess.run(
        [KUBECTL, "kustomize", str(tmp_path / name)], capture_output=True, text=True, check=True
    )
    return [o for o in yaml.safe_load_all(out.stdout) if o]


def put(cluster: FakeCluster, objects: list[dict]) -> None:
    """Adds the objects whose kinds the cluster serves (a cluster without a CRD has none)."""
    for obj in objects:
        with contextlib.suppress(KeyError):
            cluster.add(copy.deepcopy(obj), NS)


def pod(name: str, template: dict, labels: dict[str, str], **status) -> dict:
    """A pod a controller made of `template`: its labels and container, a status."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {**template["metadata"]["labels"], **labels}},
        "spec": copy.deepcopy(template["spec"]),
        "status": status or {"phase": "Running"},
    }


def template_of(objects: list[dict], kind: str) -> dict:
    """The pod template of a run's object (deploy.kinds.POD_SPECS: where each kind keeps it)."""
    resource = {"job": "Job", "tfjob": "TFJob", "trainjob": "TrainingRuntime"}[kind]
    obj = next(o for o in objects if o["kind"] == resource)
    node = obj
    for key in kinds.POD_SPECS[resource][0].strip("/").split("/")[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    return node


def put_run(cluster: FakeCluster, tmp_path, kind: str, run: str = "r1", **status) -> dict:
    """`make submit RUN=run KIND=kind`'s objects (those the cluster serves) and its pod."""
    objects = rendered(tmp_path / run, kind, run, run)
    put(cluster, objects)
    _, _, label, name = RUN_KINDS[kind]
    the_pod = pod(
        name.replace("r1", run), template_of(objects, kind), {label: f"kuka-train-{run}"}, **status
    )
    cluster.add(the_pod, NS)
    return the_pod


def serves(cluster: FakeCluster, kind: str) -> bool:
    api, plural, _, _ = RUN_KINDS[kind]
    group = api.split("/")[2]
    return any(r.plural == plural and r.group == group for r in cluster.resources)


def last_error(result: subprocess.CompletedProcess) -> str:
    """The user's one line: stderr without make's own `make: *** ... Error N` line."""
    lines = [x for x in result.stderr.splitlines() if not x.startswith("make: ***")]
    assert len(lines) == 1, result.stderr
    return lines[0]


def put_distributed(cluster: FakeCluster, tmp_path, layout: str) -> list[dict]:
    """`make submit-distributed LAYOUT=layout RUN=d1`'s objects in the cluster."""
    kind = "jobset" if layout == "jobset" else "distributed"
    objects = rendered(tmp_path, kind, "distributed-d1", "d1")
    put(cluster, objects)
    return objects


def put_tune(cluster: FakeCluster, tmp_path, run: str) -> None:
    """`make tune RUN=run`'s Experiment, and two trials Katib made of it."""
    put(cluster, [o for o in rendered(tmp_path / run, "tune", f"tune-{run}", run)
                  if o["kind"] == "Experiment"])  # fmt: skip
    for suffix in ("x7k2p9qd", "m4n8b2vc"):
        trial = {"apiVersion": "kubeflow.org/v1beta1", "kind": "Trial",
                 "metadata": {"name": f"kuka-tune-{run}-{suffix}",
                              "labels": {"katib.kubeflow.org/experiment": f"kuka-tune-{run}"}}}  # fmt: skip
        put(cluster, [trial])


def set_status(cluster: FakeCluster, plural: str, name: str, status: dict) -> None:
    obj = next(o for (r, _, n), o in cluster.objects.items() if (r.plural, n) == (plural, name))
    obj["status"] = status
