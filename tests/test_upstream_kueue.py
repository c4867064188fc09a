"""Every flavour with QUEUE set, as Kueue v0.19.2 sees it (tests/upstream/kueue.py).

The overlays are written by deploy/overlay.py and rendered by the real `kubectl kustomize`;
the children the controllers create (a TrainJob's JobSet, a JobSet's Jobs, a Katib trial's
Job) are built from their rules, and Kueue's matching rules decide which object is a run's
workload.
"""

from __future__ import annotations

import os

import pytest

from deploy import kinds, overlay
from tests.conftest import ROOT
from tests.upstream import kueue, trainer, write_overlay

SCHEDULING = ["--gpu", "--spot", "--priority-class=low", "--deadline=7200"]
# The objects that are each flavour's Kueue workloads: one per run, but for LAYOUT=jobs,
# whose learner and collectors are two Jobs (the JobSet layout makes them one).
WORKLOADS = {
    "job": [("Job", "kuka-train-ppo-test-1")],
    "render": [("Job", "kuka-render-ppo-test-1")],
    "trainjob": [("TrainJob", "kuka-train-ppo-test-1")],
    "tune": [("Job", "kuka-tune-ppo-test-1-xxxxxxxx")],  # each trial's Job
    "jobset": [("JobSet", "kuka-distributed")],
    "distributed": [("Job", "kuka-learn"), ("Job", "kuka-collect")],
    "tfjob": [("TFJob", "kuka-train-ppo-test-1")],
}


@pytest.fixture(scope="module")
def queued(tmp_path_factory):
    """Each kind's objects as a cluster holds them, with QUEUE set, plain and scheduled."""
    out = {}
    for kind in kinds.KINDS:
        for name, extra in (("plain", []), ("scheduled", SCHEDULING)):
            if kind == "render" and extra:
                continue
            path = tmp_path_factory.mktemp(f"{kind}-{name}")
            objects = write_overlay(path, kind, "--queue=team-q", *extra)
            out[(kind, name)] = (objects, kueue.cluster_objects(objects))
    return out


def test_each_run_is_one_workload_in_its_queue(queued):
    for (kind, name), (_, nodes) in queued.items():
        frameworks = kueue.RELEASE_FRAMEWORKS
        if kind == "tfjob":  # off in Kueue's own manifests; the README says to turn it on
            frameworks |= {"kubeflow.org/tfjob"}
        found = kueue.workloads(nodes, frameworks)
        assert sorted((n.kind, n.name) for n in found) == sorted(WORKLOADS[kind]), (kind, name)
        assert all(n.labels[kueue.QUEUE_LABEL] == "team-q" for n in found)
        # The label is on the top object only: never on a child the controllers create.
        assert kueue.ignored_labels(nodes, frameworks) == [], (kind, name)
        for node in nodes:
            assert kueue.queue_name_errors(node.labels) == [], (kind, node.name)


def test_a_tfjob_is_queued_only_with_kueues_tfjob_integration(queued):
    """Kueue's release manifests leave kubeflow.org/tfjob off: the label alone does nothing."""
    _, nodes = queued[("tfjob", "plain")]
    assert kueue.workloads(nodes) == []
    readme = open(os.path.join(ROOT, "README.md")).read()
    assert "kubeflow.org/tfjob" in readme


def test_without_queue_nothing_is_labelled_or_held(tmp_path):
    """manageJobsWithoutQueueName is off by default: unlabelled runs start at once."""
    for kind in kinds.KINDS:
        nodes = kueue.cluster_objects(write_overlay(tmp_path / kind, kind))
        assert not any(kueue.QUEUE_LABEL in n.labels for n in nodes), kind
        assert kueue.workloads(nodes) == [], kind


def test_trainjobs_pass_the_trainer_webhook_after_kueues(queued):
    """Kueue's TrainJob webhook appends its own runtime patch; the Trainer must still admit it."""
    for name in ("plain", "scheduled"):
        objects, _ = queued[("trainjob", name)]
        (trainjob,) = [o for o in objects if o["kind"] == "TrainJob"]
        runtimes = [o for o in objects if o["kind"] == "TrainingRuntime"]
        after = kueue.with_kueue_runtime_patch(trainjob)
        assert trainer.validate_trainjob(after, runtimes) == [], name


def test_a_queue_name_kueue_would_refuse_is_refused_before_anything_is_built(tmp_path, capsys):
    code = overlay.main(
        [
            *("--kind=job", "--name=q", "--run=r1", "--image=i", "--tag=t", "--bucket=b"),
            *("--queue=Team_Q", f"--out={tmp_path}"),
        ]
    )
    assert code == 2 and not os.listdir(tmp_path)
    assert "QUEUE" in capsys.readouterr().err
