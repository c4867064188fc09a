"""The run builder in-process, with tiny values: the agent, the learner and the record
every loop gets, what a checkpoint holds, and that nothing is lost when a loop fails."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import agents, builder, labelling, record, rundir
from trainer import learner as learner_lib
from trainer.config import Config
from trainer.rundir import RunDir

pytestmark = pytest.mark.slow  # each test starts a real env process (a few seconds)

CFG = Config(
    num_envs=1,
    collect_steps=64,
    total_steps=128,
    eval_interval=0,
    checkpoint_interval=64,
    eval_episodes=1,
    actor_layers=(8,),
    value_layers=(8,),
)


def _iteration(run: builder.Run) -> None:
    """One iteration of the local loop: collect, learn, record."""
    pool = run.parts.pool
    pool.start_collect(run.parts.params(), CFG.collect_steps)
    results = pool.finish_collect()
    experience = learner_lib.to_trajectory(
        [segment for segment, _ in results], run.parts.agent.collect_data_spec
    )
    loss = run.learner.learn(experience, CFG.collect_steps)
    episodes = [episode for _, done in results for episode in done]
    run.recorder.record(CFG.collect_steps, 1.0, loss, episodes, {})


def _saved(run_dir: str) -> dict:
    reader = tf.train.load_checkpoint(RunDir(run_dir).checkpoints)
    return reader.get_variable_to_shape_map()


def test_a_run_checkpoints_its_counters_its_learner_and_the_loops_own_variables(tmp_path):
    version = tf.Variable(0, dtype=tf.int64, name="policy_version")
    run_dir = str(tmp_path / "run")
    with builder.run(CFG, run_dir, 1, tracked={"policy_version": version}, log=print) as run:
        while run.recorder.steps < CFG.total_steps:
            _iteration(run)
    assert run.result is not None and run.result["env_steps"] == CFG.total_steps
    saved = " ".join(_saved(run_dir))
    for name in ("agent/", "env_steps/", "train_step/", "policy_version/"):
        assert name in saved, name
    assert os.path.isdir(RunDir(run_dir).policy)

    # Built again, the run takes up where it was, with its policy back if a crash came
    # between the two renames of an export.
    os.rename(RunDir(run_dir).policy, RunDir(run_dir).policy + ".old")
    with builder.run(CFG, run_dir, 1, tracked={"policy_version": version}, log=print) as again:
        assert again.recorder.steps == CFG.total_steps
        assert int(again.parts.train_step.numpy()) == int(run.parts.train_step.numpy())
        assert os.path.isdir(RunDir(run_dir).policy)


def test_a_loop_that_fails_keeps_what_it_learned_and_is_not_evaluated(tmp_path):
    run_dir = str(tmp_path / "run")
    failed = pytest.raises(RuntimeError, match="the loop failed")
    with failed, builder.run(CFG, run_dir, 1, log=print) as run:
        _iteration(run)
        raise RuntimeError("the loop failed")
    assert run.result is None
    assert record.listed_checkpoints(RunDir(run_dir).checkpoints)
    assert not os.path.exists(RunDir(run_dir).eval_json)


def test_a_signal_in_the_middle_of_a_checkpoint_leaves_the_save_to_close(tmp_path, monkeypatch):
    """SIGTERM's handler raises SystemExit wherever Python is, a checkpoint's export
    included: close() must save and export again, not take the cut save as done."""
    run_dir = str(tmp_path / "run")
    exports = []

    def cut_once(final, write):
        exports.append(final)
        if len(exports) == 1:
            raise SystemExit(143)
        real_export(final, write)

    real_export = rundir.export_dir
    monkeypatch.setattr(rundir, "export_dir", cut_once)
    with pytest.raises(SystemExit), builder.run(CFG, run_dir, 1, log=print) as run:
        _iteration(run)  # 64 steps: a checkpoint, its export cut short
    assert len(exports) == 2 and os.path.isdir(RunDir(run_dir).policy)
    assert not os.path.exists(RunDir(run_dir).eval_json)  # stopped: not evaluated


def test_the_same_seed_builds_the_same_agent():
    def weights(seed: int) -> list[np.ndarray]:
        with builder.agent(Config(**{**CFG.__dict__, "seed": seed}), 1) as parts:
            return [w.numpy() for w in parts.agent.collect_policy.variables()]

    first, again, other = weights(3), weights(3), weights(4)
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))


def test_an_averaged_run_evaluates_exports_and_keeps_the_average_and_learns_the_same(tmp_path):
    """--policy_average changes the greedy policy only: the same seed learns the same
    weights, the export and the evaluation are the average, the checkpoint keeps it."""
    averaged_cfg = Config(**{**CFG.__dict__, "policy_average": 100})

    def trained(cfg: Config, run_dir: str) -> builder.Run:
        with builder.run(cfg, run_dir, 1, log=print) as run:
            while run.recorder.steps < cfg.total_steps:
                _iteration(run)
        return run

    plain = trained(Config(**{**CFG.__dict__, "policy_average": 0}), str(tmp_path / "plain"))
    run_dir = str(tmp_path / "averaged")
    averaged = trained(averaged_cfg, run_dir)
    live = [v.numpy() for v in agents.actor_variables(averaged.parts.agent)]
    mean = [v.numpy() for v in averaged.parts.average.average]
    plain_live = [v.numpy() for v in agents.actor_variables(plain.parts.agent)]
    for a, b in zip(live, plain_live, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not all(np.array_equal(a, b) for a, b in zip(live, mean, strict=True))
    assert any(name.startswith("policy_average/") for name in _saved(run_dir))

    exported = tf.saved_model.load(RunDir(run_dir).policy)
    first_kernel = next(v for v in exported.model_variables if v.shape == live[0].shape)
    np.testing.assert_allclose(first_kernel.numpy(), mean[0])
    RunDir(run_dir).save_config(averaged_cfg)  # as task.py does: the teacher reads it
    np.testing.assert_allclose(labelling.teacher_params(run_dir)["hidden"][0][0], mean[0])

    with builder.run(averaged_cfg, run_dir, 1, log=print) as again:
        np.testing.assert_allclose(again.parts.average.average[0].numpy(), mean[0])
