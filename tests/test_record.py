"""The run record's pieces that need no training: evaluation points, which checkpoint
restores, and a save that a SIGTERM does not cut."""

from __future__ import annotations

import os
import signal

import pytest

from trainer import record
from trainer.config import Config


def test_evaluations_fall_at_the_first_boundary_past_each_multiple():
    cfg = Config(eval_interval=100_000, total_steps=600_000)
    boundaries = range(0, 600_000, 4_096)
    due = [
        after
        for before, after in zip(boundaries, boundaries[1:], strict=False)
        if record.eval_due(cfg, before, after)
    ]
    assert due[:3] == [102_400, 200_704, 303_104]


def test_evaluations_left_count_the_periodic_ones_and_the_final_one():
    cfg = Config(eval_interval=100_000, total_steps=600_000)
    assert record.evals_left(cfg, 0) == 6
    assert record.evals_left(cfg, 450_000) == 2
    assert record.evals_left(Config(eval_interval=0, total_steps=600_000), 0) == 1


def test_the_newest_checkpoint_that_restores_is_taken_and_none_is_an_error(tmp_path):
    import tensorflow as tf

    steps = tf.Variable(0, dtype=tf.int64)
    checkpoint = tf.train.Checkpoint(env_steps=steps)
    manager = tf.train.CheckpointManager(checkpoint, str(tmp_path), max_to_keep=3)
    for step in (300, 600, 900):
        steps.assign(step)
        manager.save(checkpoint_number=step)
    data = tmp_path / "ckpt-900.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    (tmp_path / "ckpt-600.index").write_bytes(b"")  # emptied
    said = []
    record.restore_newest(checkpoint, str(tmp_path), said.append)
    assert int(steps.numpy()) == 300
    assert [line.split(":")[0] for line in said] == [
        f"Skipping checkpoint {tmp_path}/ckpt-900",
        f"Skipping checkpoint {tmp_path}/ckpt-600",
    ]
    (tmp_path / "ckpt-300.index").write_bytes(b"")
    with pytest.raises(record.CheckpointError) as none:
        record.restore_newest(checkpoint, str(tmp_path), said.append)
    assert str(none.value).startswith(f"no checkpoint in {tmp_path} restores: ckpt-900 (")
    assert "ckpt-600 (" in str(none.value) and "ckpt-300 (" in str(none.value)


def test_a_sigterm_during_a_save_waits_for_it_and_close_does_not_save_again(
    sigterm_exits, sigterm_inside_a_tensorflow_error, tmp_path
):
    """The signal lands inside the policy export (conftest.py); the checkpoint and the
    export finish, then SIGTERM's SystemExit; the record knows it saved, so close(),
    which every loop calls on its way out, writes nothing more."""
    import numpy as np
    import tensorflow as tf
    from tf_agents.specs import array_spec, tensor_spec
    from tf_agents.trajectories import time_step as ts

    from trainer import agents, config
    from trainer.rundir import RunDir

    cfg = config.for_agent(
        "ppo", actor_layers=(8,), value_layers=(8,), checkpoint_interval=100, eval_interval=0
    )
    obs = array_spec.BoundedArraySpec((9,), np.float32, -100.0, 100.0, name="observation")
    action = array_spec.BoundedArraySpec((3,), np.float32, -1.0, 1.0, name="action")
    env_steps = tf.Variable(0, dtype=tf.int64)
    agent = agents.create(
        cfg, tensor_spec.from_spec(ts.time_step_spec(obs)), tensor_spec.from_spec(action), env_steps
    )
    recorder = record.RunRecorder(
        cfg, str(tmp_path), agent, {"agent": agent, "env_steps": env_steps}, None, lambda m: None
    )
    sent = sigterm_inside_a_tensorflow_error()
    with pytest.raises(SystemExit) as stopped:
        recorder.record(100, 1.0, None)
    assert stopped.value.code == 143 and sent == [signal.SIGTERM]
    policy = RunDir(str(tmp_path)).policy
    exported = os.stat(policy).st_mtime_ns
    assert record.listed_checkpoints(RunDir(str(tmp_path)).checkpoints)
    recorder.close()
    assert os.stat(policy).st_mtime_ns == exported
