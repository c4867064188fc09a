"""trainer/rundir.py: a run directory's files, lock, settings and resume decision, in-process."""

import errno
import json
import os
import signal
import subprocess
import sys

import pytest

from tests.conftest import tiny_module
from trainer import errors, rundir
from trainer.config import Config
from trainer.rundir import RunDir


def test_every_file_of_a_run_is_named_under_it(tmp_path):
    run = RunDir(str(tmp_path / "r"))
    paths = [run.config, run.checkpoints, run.policy, run.eval_json, run.train_events]
    paths += [run.eval_events, run.eval_at(600), run.file(RunDir.VISION)]
    assert all(os.path.dirname(p) == run.path for p in paths)
    assert os.path.basename(run.eval_at(600)) == "eval-600.json"


def test_config_round_trips_through_json_and_garbage_is_refused(tmp_path):
    run = RunDir(str(tmp_path / "r"))
    cfg = Config(actor_layers=(32, 16), total_steps=1234, run="r")
    run.save_config(cfg)  # makes the directory
    assert run.load_config() == cfg
    assert json.loads(open(run.config).read())["actor_layers"] == [32, 16]
    with open(run.config, "w") as f:
        f.write("{not json")
    with pytest.raises(ValueError, match="cannot read"):
        run.load_config()
    with open(run.config, "w") as f:
        f.write('{"no_such_field": 1}')
    with pytest.raises(ValueError, match="unknown config fields"):
        run.load_config()


def test_the_command_log_appends(tmp_path):
    run = RunDir(str(tmp_path))
    run.log_command("first")
    run.log_command("second")
    assert open(run.file(RunDir.COMMAND)).read() == "first\nsecond\n"


def test_a_resume_merges_the_given_flags_and_stops_a_finished_run(tmp_path):
    run = RunDir(str(tmp_path / "r"))
    run.save_config(Config(logdir=str(tmp_path), run="r", total_steps=900, learning_rate=5e-4))
    wanted = Config(logdir=str(tmp_path), run="r", total_steps=1200)
    assert run.resumed(wanted, {"total_steps": 1200}).learning_rate == 5e-4
    with pytest.raises(errors.UsageError, match="learning_rate: run has 0.0005"):
        run.resumed(wanted, None)  # every field compared
    with open(run.eval_json, "w") as f:
        json.dump({"env_steps": 1200}, f)
    assert run.finished_at() == 1200
    with pytest.raises(rundir.AlreadyFinished, match="already finished at step 1,200"):
        run.resumed(wanted, {"total_steps": 1200})


def test_a_second_process_is_refused_the_lock_naming_the_first(tmp_path):
    run = RunDir(str(tmp_path / "r"))
    assert run.lock() is run.lock()  # held once per process
    other = (
        "import sys; from trainer.rundir import RunDir\n"
        "try: RunDir(sys.argv[1]).lock()\n"
        "except Exception as e: print(type(e).__name__, e)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", other, run.path], capture_output=True, text=True, check=True
    ).stdout
    assert out.startswith(f"RunBusy run r is being trained by pid {os.getpid()} on ")
    assert not os.path.exists(run.path)  # the lock sits beside the run, never uploaded


def test_a_full_or_unwritable_disk_is_one_line_naming_the_last_checkpoint(tmp_path):
    run = RunDir(str(tmp_path))
    os.makedirs(run.checkpoints)
    with open(run.file(RunDir.CHECKPOINT_POINTER), "w") as f:
        f.write('model_checkpoint_path: "ckpt-600"\n')
    full = run.failure_message(OSError(errno.ENOSPC, "No space left on device"))
    assert full.startswith(f"no space left on the disk of {run.path} (")
    assert "the last intact checkpoint is ckpt-600; free some space" in full
    denied = run.failure_message(PermissionError(errno.EACCES, "Permission denied", "x"))
    assert denied.startswith(f"cannot write in {run.path} (Permission denied: x)")
    assert run.failure_message(ValueError("a bug")) is None
    assert "\n" not in full + denied


def test_write_atomic_keeps_the_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "config.json"
    rundir.write_atomic(str(path), "old\n")

    def full_disk(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match="No space left"):
        rundir.write_atomic(str(path), "new\n")
    assert path.read_text() == "old\n"
    assert os.listdir(tmp_path) == ["config.json"]


def test_an_export_swaps_in_whole_and_one_cut_between_its_renames_is_put_back(tmp_path):
    final = str(tmp_path / "policy")

    def write(version):
        return lambda staging: (os.makedirs(staging), open(f"{staging}/v", "w").write(version))

    rundir.export_dir(final, write("1"))
    rundir.export_dir(final, write("2"))
    assert sorted(os.listdir(tmp_path)) == ["policy"] and open(f"{final}/v").read() == "2"
    os.rename(final, final + ".old")  # killed after the first rename, before the second
    rundir.recover_export(final)
    assert sorted(os.listdir(tmp_path)) == ["policy"] and open(f"{final}/v").read() == "2"
    rundir.recover_export(final)  # nothing to put back: nothing changes
    assert open(f"{final}/v").read() == "2"


def test_a_plain_export_cut_there_is_a_runtime_error(
    sigterm_exits, sigterm_inside_a_tensorflow_error, tmp_path
):
    """What the hold is for: the SystemExit is lost in pybind11's RuntimeError."""
    import tensorflow as tf

    module = tiny_module()
    sent = sigterm_inside_a_tensorflow_error()
    with pytest.raises(RuntimeError, match="MISMATCH.*SystemExit: 143"):
        tf.saved_model.save(module, str(tmp_path / "policy"))
    assert sent == [signal.SIGTERM]


def test_a_sigterm_during_an_export_waits_for_the_swap(
    sigterm_exits, sigterm_inside_a_tensorflow_error, tmp_path
):
    import tensorflow as tf

    final, module = str(tmp_path / "policy"), tiny_module()
    sent = sigterm_inside_a_tensorflow_error()
    with pytest.raises(SystemExit) as stopped:
        rundir.export_dir(final, lambda staging: tf.saved_model.save(module, staging))
    assert stopped.value.code == 143 and sent == [signal.SIGTERM]
    assert os.listdir(tmp_path) == ["policy"]
    assert float(tf.saved_model.load(final).f(3.0)) == 6.0
