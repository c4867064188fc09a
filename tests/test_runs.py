import datetime
import os
import time

import pytest

from trainer import runs


def test_run_id_is_a_kubernetes_name():
    now = datetime.datetime(2026, 11, 23, 22, 5, 1)
    run_id = runs.make_run_id("ppo", "KukaGrasp-v0", now)
    assert run_id == "ppo-kukagrasp-v0-20261123-220501"
    runs.check_run_id(run_id)


def test_long_env_ids_are_cut_to_63_characters():
    run_id = runs.make_run_id("sac", "Some_Very/Long.Env" * 10 + "-v3")
    assert len(run_id) <= 63
    runs.check_run_id(run_id)


@pytest.mark.parametrize("bad", ["Upper", "under_score", "-dash", "dash-", "x" * 64, ""])
def test_invalid_run_ids_are_refused(bad):
    with pytest.raises(ValueError, match="Kubernetes name"):
        runs.check_run_id(bad)


def test_latest_run_is_the_newest_with_a_config(tmp_path):
    assert runs.latest_run(str(tmp_path / "missing")) is None
    for name in ("old", "new", "noconfig"):
        (tmp_path / name).mkdir()
    (tmp_path / "old" / "config.json").write_text("{}")
    (tmp_path / "new" / "config.json").write_text("{}")
    past = time.time() - 100
    os.utime(tmp_path / "old", (past, past))
    assert runs.latest_run(str(tmp_path)) == str(tmp_path / "new")


def test_check_logdir():
    runs.check_logdir("runs")
    runs.check_logdir("/abs/runs")
    runs.check_logdir("gs://kuka-runs/runs")
    for bad in ("gs:/kuka-runs", "s3://kuka-runs", "gs://b"):
        with pytest.raises(ValueError):
            runs.check_logdir(bad)
