"""Run ids at the controllers' name limits: `make` refuses one past, in one line, first.

Each kind's limit (deploy/kinds.py) comes from the names a controller derives from the run:

- Job: Kubernetes puts the Job's name in its pods' label batch.kubernetes.io/job-name,
  a label value of at most 63 characters;
- TFJob: training-operator names each pod and Service NAME-worker-0 (kubeflow/trainer
  v1.9.4, pkg/core/utils.go, GenGeneralName) and its webhook wants a DNS-1035 name
  (pkg/webhooks/tensorflow/tfjob_webhook.go, validateTFJob);
- TrainJob: its JobSet's webhook checks the pod name NAME-node-0-0 plus 5 characters
  (tests/upstream/jobset.py, from kubernetes-sigs/jobset v0.12.0);
- tune: Katib's Experiment validator allows 40 (tests/upstream/katib.py, kubeflow/katib
  v0.19.0); the trials' names fit then;
- jobset, distributed: fixed object names; the run id goes to the flags, 63 at most.
"""

from __future__ import annotations

import datetime
import subprocess

import pytest

from deploy import kinds, values
from tests.conftest import ROOT, make_env
from tests.upstream import jobset, write_overlay
from trainer import runs

TARGETS = {
    "job": ["submit", "KIND=job"],
    "tfjob": ["submit", "KIND=tfjob"],
    "trainjob": ["submit", "KIND=trainjob"],
    "render": ["render", "TARGET=cluster"],
    "tune": ["tune"],
    "jobset": ["submit-distributed"],
}


def _make(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "-s", *args, "DRY_RUN=1", "PROJECT=p", "TAG=v9", "BUCKET=b"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=make_env(),
    )


@pytest.mark.parametrize("kind", sorted(TARGETS))
def test_make_takes_the_longest_run_and_refuses_one_more_before_anything(kind):
    limit = kinds.max_run_length(kind)
    assert (
        limit
        == {
            "job": 52,
            "tfjob": 43,
            "trainjob": 37,
            "render": 51,
            "tune": 30,
            "jobset": 63,
        }[kind]
    )
    fits = _make(*TARGETS[kind], f"RUN={'r' * limit}")
    assert fits.returncode == 0, fits.stderr
    refused = _make(*TARGETS[kind], f"RUN={'r' * (limit + 1)}")
    assert refused.returncode == 2
    assert refused.stderr.strip().count("\n") == 0 and f"at most {limit}" in refused.stderr
    assert refused.stdout == ""  # nothing built, written, printed or contacted


def test_tfjob_pod_and_service_names_at_the_limit(tmp_path):
    limit = kinds.max_run_length("tfjob")
    for run, fits in (("r" * limit, True), ("r" * (limit + 1), False)):
        name = f"kuka-train-{run}"
        # GenGeneralName(NAME, "Worker", "0"), a DNS-1035 label as Service names are.
        assert (jobset.dns1035_errors(f"{name}-worker-0") == []) == fits
    (tfjob,) = [
        o for o in write_overlay(tmp_path, "tfjob", f"--run={'r' * limit}") if o["kind"] == "TFJob"
    ]
    assert list(tfjob["spec"]["tfReplicaSpecs"]) == ["Worker"]
    assert len(f"{tfjob['metadata']['name']}-worker-0") == kinds.NAME_LIMIT


def test_job_name_label_at_the_limit(tmp_path):
    limit = kinds.max_run_length("job")
    (job,) = [
        o for o in write_overlay(tmp_path, "job", f"--run={'r' * limit}") if o["kind"] == "Job"
    ]
    assert len(job["metadata"]["name"]) == kinds.NAME_LIMIT  # the job-name label's limit


def test_default_run_ids_are_cut_to_the_kinds_limit(capsys):
    now = datetime.datetime(2026, 11, 23, 22, 5, 1)
    assert (
        runs.make_run_id("ppo", "KukaGrasp-v0", now, max_len=30) == "ppo-kukagrasp-20261123-220501"
    )
    assert runs.make_run_id("ppo", "KukaGrasp-v0", now) == "ppo-kukagrasp-v0-20261123-220501"
    for kind in kinds.KINDS:
        assert values.main(["run-id", "sac", "KukaBulletEnv-v0", kind]) == 0
        run_id = capsys.readouterr().out.strip()
        kinds.check_run(run_id, kind)
    assert values.main(["run-id", "ppo", "KukaGrasp-v0", "nope"]) == 2
    assert capsys.readouterr().err.strip().count("\n") == 0
