"""Every trainjob flavour as Kubeflow Trainer v2.3.0 admits and runs it (tests/upstream/trainer.py).

The overlays are written by deploy/overlay.py and rendered by the real `kubectl kustomize`;
the Trainer's webhooks and its JobSet builder are applied as its source at v2.3.0 has them,
and the JobSet it builds goes through JobSet v0.12.0's webhook (tests/upstream/jobset.py).
"""

from __future__ import annotations

import copy
import json
import os

import pytest

from deploy import kinds
from tests.conftest import ROOT
from tests.upstream import jobset, trainer, write_overlay

FLAVOURS = {
    "plain": [],
    "gpu": ["--gpu"],
    "gpu-t4": ["--gpu", "--accelerator=nvidia-tesla-t4"],
    "spot": ["--spot"],
    "kueue": ["--queue=team-q"],
    "priority": ["--priority-class=low"],
    "deadline": ["--deadline=7200"],
    "all": [
        "--gpu",
        "--accelerator=nvidia-tesla-t4",
        "--spot",
        "--queue=team-q",
        "--priority-class=low",
        "--deadline=7200",
    ],
}


@pytest.fixture(scope="module")
def flavours(tmp_path_factory):
    """Each flavour's rendered objects: {name: {kind: [objects]}}."""
    out = {}
    for name, args in FLAVOURS.items():
        objects = write_overlay(tmp_path_factory.mktemp(name), "trainjob", *args)
        out[name] = {}
        for obj in objects:
            out[name].setdefault(obj["kind"], []).append(obj)
    return out


def _schema(name: str) -> dict:
    with open(os.path.join(ROOT, "tests", "data", "schemas", name)) as f:
        return json.load(f)


def test_every_runtime_passes_the_trainingruntime_webhook(flavours):
    for name, objects in flavours.items():
        (runtime,) = objects["TrainingRuntime"]
        assert trainer.validate_runtime(runtime) == [], name
        # The ancestor label is what lets the TrainJob's image, args and resources reach
        # the `node` container (Builder.Trainer, newRuntimeInfo).
        rjobs = runtime["spec"]["template"]["spec"]["replicatedJobs"]
        assert [r["template"]["metadata"]["labels"][trainer.ANCESTOR] for r in rjobs] == ["trainer"]


def test_every_trainjob_passes_the_trainjob_crd_and_webhook(flavours):
    for name, objects in flavours.items():
        (trainjob,) = objects["TrainJob"]
        assert trainer.validate_trainjob(trainjob, objects["TrainingRuntime"]) == [], name


def test_no_field_is_unknown_to_the_crds(flavours):
    """kubectl apply refuses (--validate=strict) what the API server would prune."""
    schemas = {
        "TrainJob": _schema("trainjob.json"),
        "TrainingRuntime": _schema("trainingruntime.json"),
    }
    for name, objects in flavours.items():
        for kind, schema in schemas.items():
            (obj,) = objects[kind]
            assert trainer.unknown_fields(obj, schema) == [], (name, kind)


def _at(obj: dict, path: str):
    """The value at a JSON pointer (list indexes as digits)."""
    for key in path.strip("/").split("/"):
        obj = obj[int(key)] if isinstance(obj, list) else obj[key]
    return obj


RUNTIME_RJOB = "/spec/template/spec/replicatedJobs/0"
PATCH = "/spec/runtimePatches/0"
PATCH_RJOB = f"{PATCH}/trainingRuntimeSpec/template/spec/replicatedJobs/0"


def test_the_rules_refuse_what_the_trainer_refuses(flavours):
    """Each rule bites: objects the Trainer refuses are refused here too."""
    (trainjob,) = flavours["plain"]["TrainJob"]
    runtimes = flavours["plain"]["TrainingRuntime"]
    edits = [  # (object, JSON pointer, key, value): None removes the key
        (runtimes[0], RUNTIME_RJOB, "replicas", 2),
        (runtimes[0], f"{RUNTIME_RJOB}/template/spec/template/spec/containers/0", "name", "main"),
        (trainjob, "/metadata", "name", "1-" + trainjob["metadata"]["name"]),
        (trainjob, "/metadata", "name", "k" * 64),
        (trainjob, "/metadata", "namespace", "elsewhere"),
        (trainjob, "/spec/runtimeRef", "kind", None),  # the default: ClusterTrainingRuntime
        (trainjob, PATCH, "manager", "kuka-grasp"),  # not a domain-prefixed path
        (trainjob, PATCH_RJOB, "name", "trainer"),  # no such replicated job in the runtime
        (trainjob, "/spec", "activeDeadlineSeconds", 0),
    ]
    for obj, path, key, value in edits:
        changed = copy.deepcopy(obj)
        if value is None:
            del _at(changed, path)[key]
        else:
            _at(changed, path)[key] = value
        if changed["kind"] == "TrainingRuntime":
            assert trainer.validate_runtime(changed), (path, key)
        else:
            assert trainer.validate_trainjob(changed, runtimes), (path, key)
    # runtimePatches cannot set a priority class: hence a runtime of its own per class.
    changed = copy.deepcopy(trainjob)
    _at(changed, f"{PATCH_RJOB}/template/spec/template/spec")["priorityClassName"] = "low"
    assert trainer.unknown_fields(changed, _schema("trainjob.json"))


def test_the_built_jobset_passes_jobsets_webhook_up_to_the_longest_run_id(tmp_path):
    """TrainJob NAME -> JobSet NAME -> Job NAME-node-0 -> pods NAME-node-0-0-xxxxx (Indexed,
    JobSet's default): JobSet's webhook checks them, so the run id limit is theirs."""
    longest = "r" * kinds.max_run_length("trainjob")
    objects = write_overlay(tmp_path, "trainjob", f"--run={longest}", "--queue=team-q")
    (trainjob,) = [o for o in objects if o["kind"] == "TrainJob"]
    (runtime,) = [o for o in objects if o["kind"] == "TrainingRuntime"]
    built = trainer.build_jobset(trainjob, runtime)
    assert built["metadata"]["name"] == trainjob["metadata"]["name"]
    assert jobset.validate_create(jobset.default(built)) == []
    (rjob,) = jobset.default(built)["spec"]["replicatedJobs"]
    assert len(jobset.longest_pod_name(built["metadata"]["name"], rjob)) == 63
    one_more = copy.deepcopy(built)
    one_more["metadata"]["name"] += "r"
    assert jobset.validate_create(jobset.default(one_more))
    with pytest.raises(ValueError, match="at most"):
        kinds.check_run(longest + "r", "trainjob")


def _node_pod(built: dict) -> dict:
    (rjob,) = built["spec"]["replicatedJobs"]
    return rjob["template"]["spec"]["template"]["spec"]


def test_the_trainer_runs_one_pod_with_the_trainjobs_command(flavours):
    """One trainer per run (it holds the run's lease): PlainML sets the pod count from numNodes."""
    for name, objects in flavours.items():
        (trainjob,) = objects["TrainJob"]
        built = trainer.build_jobset(trainjob, objects["TrainingRuntime"][0])
        (rjob,) = built["spec"]["replicatedJobs"]
        job = rjob["template"]["spec"]
        assert (rjob["replicas"], job["parallelism"], job["completions"]) == (1, 1, 1), name
        (container,) = _node_pod(built)["containers"]
        spec = trainjob["spec"]["trainer"]
        assert container["args"] == spec["args"] and container["image"] == spec["image"]
        assert container["resources"] == spec["resourcesPerNode"], name


def test_a_second_run_with_other_settings_leaves_the_first_runs_pods_alone(flavours):
    """Issue 24, point 5. Trainer v2.2 rebuilds a queued (suspended) TrainJob's JobSet from the
    runtime as it is now (jobset.go Build); v2.3.0 reads a snapshot taken at the first
    reconcile (snapshot.go). Either way a runtime that every run shares must hold nothing a
    run chooses: each TrainingRuntime's content is fixed by its name, and each run's pods
    get its own settings from its own TrainJob."""
    by_name = {}
    for name, objects in flavours.items():
        (runtime,) = objects["TrainingRuntime"]
        first = by_name.setdefault(runtime["metadata"]["name"], runtime)
        assert runtime == first, (name, runtime["metadata"]["name"])
    assert set(by_name) == {kinds.runtime_name(), kinds.runtime_name("low")}
    pods = {}
    for name, objects in flavours.items():
        (trainjob,) = objects["TrainJob"]
        runtime = by_name[trainjob["spec"]["runtimeRef"]["name"]]
        pods[name] = (_node_pod(trainer.build_jobset(trainjob, runtime)), trainjob)
    plain, plain_job = pods["plain"]
    assert plain["nodeSelector"] == {"kubernetes.io/os": "linux"}
    assert plain["terminationGracePeriodSeconds"] == 60 and "tolerations" not in plain
    assert "priorityClassName" not in plain and plain_job["spec"]["activeDeadlineSeconds"] == 86400
    every, every_job = pods["all"]
    assert every["nodeSelector"] == {
        "kubernetes.io/os": "linux",
        "cloud.google.com/gke-accelerator": "nvidia-tesla-t4",
        "cloud.google.com/gke-spot": "true",
    }
    assert every["terminationGracePeriodSeconds"] == 15  # within GKE's 15 s for Spot pods
    assert every["tolerations"][0]["key"] == "cloud.google.com/gke-spot"
    assert every["priorityClassName"] == "low"
    assert every["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    assert every_job["spec"]["activeDeadlineSeconds"] == 7200  # reconcileDeadline's
    assert pods["gpu"][0]["nodeSelector"]["cloud.google.com/gke-accelerator"] == "nvidia-l4"
    assert "cloud.google.com/gke-spot" not in pods["gpu"][0]["nodeSelector"]
    assert "cloud.google.com/gke-accelerator" not in pods["spot"][0]["nodeSelector"]
    for name, (pod, _) in pods.items():
        assert pod["securityContext"]["runAsNonRoot"] is True, name  # the runtime's, kept
