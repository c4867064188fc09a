"""The distributed run's JobSet, and the TrainJob's, as JobSet v0.12.0 admits and runs them.

The rules are tests/upstream/jobset.py's, written from kubernetes-sigs/jobset v0.12.0 (each
cited there): a default install, such as the one Kubeflow Trainer v2.3.0 bundles, runs
with the RestartJob feature gate off.
"""

from __future__ import annotations

import copy
import os

import pytest

from deploy import kinds, overlay
from tests.conftest import ROOT
from tests.upstream import jobset, render, write_overlay
from tests.upstream import trainer as trainer_v2

SCHEDULING = ["--gpu", "--spot", "--queue=team-q", "--priority-class=low", "--deadline=7200"]
# k8s/jobset/roles/jobset.yaml at 26c01a2: RestartJob and hyphenated rule names.
OLD_RULES = [
    {
        "name": "learner-bad-input",
        "action": "FailJobSet",
        "targetReplicatedJobs": ["learner"],
        "onJobFailureReasons": ["PodFailurePolicy"],
    },
    {"name": "learner-failed", "action": "FailJobSet", "targetReplicatedJobs": ["learner"]},
    {"name": "collectors-restart", "action": "RestartJob", "targetReplicatedJobs": ["collectors"]},
    {"name": "reverb-restart", "action": "RestartJob", "targetReplicatedJobs": ["reverb"]},
]


def _jobset(objects: list[dict]) -> dict:
    (found,) = [o for o in objects if o["kind"] == "JobSet"]
    return found


@pytest.fixture(scope="module")
def jobsets(tmp_path_factory) -> list[dict]:
    """Every flavour of the rendered JobSet: tracked, generated, scheduled, 1 to 64 collectors."""
    out = tmp_path_factory.mktemp("jobset")
    return [
        _jobset(render(os.path.join(ROOT, "k8s", "overlays", "jobset"))),
        _jobset(write_overlay(out, "jobset", "--", "--total_steps=123")),
        _jobset(write_overlay(out, "jobset", *SCHEDULING)),
        _jobset(write_overlay(out, "jobset", "--collectors=1")),
        _jobset(write_overlay(out, "jobset", "--collectors=64")),
    ]


def test_every_jobset_is_admitted_by_a_default_install(jobsets):
    for js in jobsets:
        assert jobset.validate_create(js) == []


def test_the_old_failure_policy_is_refused_with_or_without_the_gate(jobsets):
    old = {**jobsets[0], "spec": {**jobsets[0]["spec"], "failurePolicy": {"rules": OLD_RULES}}}
    (error,) = jobset.validate_create(old)
    assert "RestartJob feature gate is disabled" in error
    gated = jobset.validate_create(old, gates={"RestartJob": True})
    assert len(gated) == 4 and all("invalid failure policy rule name" in e for e in gated)


@pytest.mark.parametrize(
    "role, reason, action",
    [
        ("learner", "PodFailurePolicy", "FailJobSet"),  # exit 2: bad input
        ("collectors", "PodFailurePolicy", "FailJobSet"),
        ("learner", "BackoffLimitExceeded", "FailJobSet"),  # its retries, each resuming
        ("learner", "DeadlineExceeded", "FailJobSet"),
        ("collectors", "FailedIndexes", "RestartJobSet"),  # an index past backoffLimitPerIndex
        ("reverb", "BackoffLimitExceeded", "RestartJobSet"),
    ],
)
def test_failures_take_the_documented_action(jobsets, role, reason, action):
    for js in jobsets:
        assert jobset.failure_action(js, role, reason) == action


def test_restarts_are_bounded_and_the_learner_ends_the_set(jobsets):
    for js in jobsets:
        spec = jobset.default(js)["spec"]
        assert spec["failurePolicy"]["maxRestarts"] == 3
        assert spec["successPolicy"] == {"operator": "Any", "targetReplicatedJobs": ["learner"]}
        jobs = {r["name"]: r["template"]["spec"] for r in spec["replicatedJobs"]}
        # A RestartJobSet comes only after a role's own Job has had its retries.
        assert jobs["reverb"]["backoffLimit"] > 0 and jobs["collectors"]["backoffLimitPerIndex"] > 0


def test_child_names_fit_with_room_for_any_collector_count(jobsets):
    """The JobSet's name is fixed, so its longest child is the last collector's pod."""
    many = jobsets[-1]
    collectors = next(
        r for r in jobset.default(many)["spec"]["replicatedJobs"] if r["name"] == "collectors"
    )
    pod = jobset.longest_pod_name(many["metadata"]["name"], collectors)
    assert pod == "kuka-distributed-collectors-0-63-abcde"
    # Room for a collector count of 10**27: no COLLECTORS value comes near.
    assert len(pod) - len("63") + 27 <= kinds.NAME_LIMIT


def _trainjob_jobset(objects: list[dict]) -> dict:
    """The JobSet Kubeflow Trainer v2.3.0 builds for the TrainJob (tests/upstream/trainer.py)."""
    (trainjob,) = [o for o in objects if o["kind"] == "TrainJob"]
    runtimes = [o for o in objects if o["kind"] == "TrainingRuntime"]
    return trainer_v2.build_jobset(trainjob, trainer_v2.referenced_runtime(trainjob, runtimes))


def test_every_trainjobs_jobset_is_admitted(tmp_path):
    for args in ([], SCHEDULING, ["--", "--total_steps=123"]):
        assert (
            jobset.validate_create(_trainjob_jobset(write_overlay(tmp_path, "trainjob", *args)))
            == []
        )


def test_trainjob_names_fit_jobsets_pod_name_rule_at_the_limit(tmp_path, capsys):
    limit = kinds.max_run_length("trainjob")
    assert limit == 37
    objects = write_overlay(tmp_path, "trainjob", f"--run={'r' * limit}")
    assert jobset.validate_create(_trainjob_jobset(objects)) == []
    one_past = _trainjob_jobset(objects)
    one_past["metadata"] = {"name": one_past["metadata"]["name"] + "r"}
    (error,) = jobset.validate_create(one_past)
    assert error.startswith("pod name:")  # the child Job's name alone would still fit
    argv = ["--kind=trainjob", "--name=no", f"--run={'r' * (limit + 1)}", "--image=i"]
    assert overlay.main([*argv, "--tag=t", "--bucket=b", f"--out={tmp_path}"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0


def _with(js: dict, **spec) -> dict:
    out = copy.deepcopy(js)
    out["spec"].update(spec)
    return out


def test_the_webhook_rules_bite(jobsets):
    js = jobsets[0]
    rules = js["spec"]["failurePolicy"]["rules"]
    cases = {
        "does not exist": _with(
            js, successPolicy={"operator": "Any", "targetReplicatedJobs": ["x"]}
        ),
        "invalid job failure reason": _with(
            js, failurePolicy={"rules": [{**rules[0], "onJobFailureReasons": ["OOMKilled"]}]}
        ),
        "not unique": _with(js, failurePolicy={"rules": [rules[1], rules[1]]}),
        "mutually exclusive": _with(
            js,
            replicatedJobs=[
                *js["spec"]["replicatedJobs"][:2],
                {
                    **js["spec"]["replicatedJobs"][2],
                    "dependsOn": [{"name": "learner", "status": "Ready"}],
                },
            ],
        ),
        "job name": {**js, "metadata": {"name": "k" * 60}},
    }
    for error, broken in cases.items():
        assert any(error in e for e in jobset.validate_create(broken)), error
