"""End-to-end training: through the CLI (run directory, TensorBoard tags, policy, resume),
and in-process where the loop's scheduling is the question."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from bench.common import TINY_FLAGS
from tests.conftest import run_task
from trainer import actors, envs, evaluate, train
from trainer.config import Config

pytestmark = pytest.mark.slow

TRAIN_TAGS = {
    "Metrics/AverageReturn",
    "Metrics/AverageEpisodeLength",
    "Metrics/SuccessRate",
    "Metrics/EnvStepsPerSecond",
    "Metrics/EnvIdleShare",
    "Losses/total_loss",
    "Losses/policy_gradient_loss",
    "Losses/value_estimation_loss",
}
EVAL_TAGS = {"Eval/AverageReturn", "Eval/AverageEpisodeLength", "Eval/SuccessRate"}


def test_run_directory_holds_everything(tiny_run):
    for name in ("config.json", "command.txt", "eval.json", "checkpoints/checkpoint"):
        assert os.path.isfile(os.path.join(tiny_run, name)), name
    assert os.path.isfile(os.path.join(tiny_run, "policy", "saved_model.pb"))
    assert json.load(open(os.path.join(tiny_run, "config.json")))["total_steps"] == 600
    assert "trainer.task" in open(os.path.join(tiny_run, "command.txt")).read()
    result = json.load(open(os.path.join(tiny_run, "eval.json")))
    assert result["env_steps"] == 600 and result["episodes"] == 2
    assert len(result["returns"]) == 2
    assert 0.0 <= result["success_rate"] <= 1.0
    assert result["mean_length"] > 0


def test_tensorboard_tags(tiny_run):
    train = evaluate.read_scalars(os.path.join(tiny_run, "train"))
    assert set(train) >= TRAIN_TAGS, set(train)
    assert [step for step, _ in train["Metrics/EnvStepsPerSecond"]] == [300, 600]
    # Not at most 1: a wait counts in the iteration of the reply after it, and this run's
    # last iteration, collected while the first learned, can last 30 ms (README, train/).
    assert all(share >= 0 for _, share in train["Metrics/EnvIdleShare"])
    eval_ = evaluate.read_scalars(os.path.join(tiny_run, "eval"))
    assert set(eval_) >= EVAL_TAGS, set(eval_)


# The exported policy needs TensorFlow and, for its distribution types,
# TensorFlow Probability: neither the trainer nor tf-agents.
_LOAD_POLICY = """
import sys
import numpy as np
import tensorflow as tf
import tensorflow_probability  # registers the policy's distribution types
policy = tf.saved_model.load(sys.argv[1])
action = policy.signatures["action"](**{
    "0/step_type": tf.constant([0], tf.int32),
    "0/reward": tf.constant([0.0], tf.float32),
    "0/discount": tf.constant([1.0], tf.float32),
    "0/observation": tf.constant(np.zeros((1, 9), np.float32)),
})["action"]
print("shape", tuple(action.shape), "step", int(policy.get_train_step()))
"""


def test_exported_policy_loads_without_trainer_code(tiny_run):
    out = subprocess.run(
        [sys.executable, "-c", _LOAD_POLICY, os.path.join(tiny_run, "policy")],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert "shape (1, 3) step 600" in out.stdout, out.stderr[-2000:]


def test_resume_continues_from_the_checkpoint(tmp_path):
    flags = [f"--logdir={tmp_path}", "--run=resume", *TINY_FLAGS]
    first = run_task(*flags, "--total_steps=300")
    assert first.returncode == 0, first.stderr[-3000:]
    # No GPU on these machines; PPO keeps TensorFlow's own threads.
    assert "Learning on the CPU (no GPU visible), one per core" in first.stderr
    created = open(tmp_path / "resume" / "config.json").read()
    # Strictly alternating collection and learning, and the threads, are resumable choices.
    second = run_task(*flags, "--total_steps=600", "--nooverlap", "--intra_op_threads=1")
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Learning on the CPU (no GPU visible), 1 intra-op thread\n" in second.stderr
    assert "from env step 300" in second.stderr
    run_dir = tmp_path / "resume"
    assert json.load(open(run_dir / "eval.json"))["env_steps"] == 600
    checkpoints = sorted(p for p in os.listdir(run_dir / "checkpoints") if p.endswith(".index"))
    assert checkpoints == ["ckpt-300.index", "ckpt-600.index"]
    steps = [s for s, _ in evaluate.read_scalars(str(run_dir / "train"))["Losses/total_loss"]]
    assert steps == [300, 600]
    assert len(open(run_dir / "command.txt").read().splitlines()) == 2
    # config.json is the run as created: a resume never rewrites it.
    assert open(run_dir / "config.json").read() == created


def test_tiny_run_leaves_no_staging_directories(tiny_run):
    assert not [name for name in os.listdir(tiny_run) if name.endswith((".tmp", ".old"))]


def test_same_seed_same_run(tiny_run, tmp_path):
    """Seeded envs, seeded initializers and deterministic ops: a run repeats step for step."""
    again = run_task(f"--logdir={tmp_path}", "--run=tiny", *TINY_FLAGS)
    assert again.returncode == 0, again.stderr[-3000:]
    repeated = open(tmp_path / "tiny" / "eval.json").read()
    assert repeated == open(os.path.join(tiny_run, "eval.json")).read()
    for sub in ("train", "eval"):
        first = evaluate.read_scalars(os.path.join(tiny_run, sub))
        second = evaluate.read_scalars(str(tmp_path / "tiny" / sub))
        for timing in ("Metrics/EnvStepsPerSecond", "Metrics/EnvIdleShare"):
            first.pop(timing, None)
            second.pop(timing, None)
        assert first == second, sub


def test_linear_schedule_and_fixed_reward_scale_train(tmp_path):
    result = run_task(
        f"--logdir={tmp_path}",
        "--run=flags",
        *TINY_FLAGS,
        "--lr_schedule=linear",
        "--entropy_coef=0.01",
        "--entropy_schedule=linear",
        "--nonormalize_rewards",
        "--nonormalize_observations",
        "--reward_scale=0.01",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    config = json.load(open(tmp_path / "flags" / "config.json"))
    assert config["lr_schedule"] == "linear" and config["reward_scale"] == 0.01
    assert config["algo"]["entropy_schedule"] == "linear"


def test_finished_run_is_left_alone_and_eval_writes_beside_it(tiny_run, tmp_path):
    import shutil

    shutil.copytree(tiny_run, tmp_path / "tiny")
    before = open(tmp_path / "tiny" / "eval.json").read()
    again = run_task(f"--logdir={tmp_path}", "--run=tiny", *TINY_FLAGS)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "already finished at step 600" in again.stderr
    assert open(tmp_path / "tiny" / "eval.json").read() == before
    steps = [
        s for s, _ in evaluate.read_scalars(str(tmp_path / "tiny" / "eval"))["Eval/SuccessRate"]
    ]
    assert steps == [600]
    result = run_task(f"--logdir={tmp_path}", "eval", "--run=tiny", "--eval_episodes=2")
    assert result.returncode == 0, result.stderr[-3000:]
    fresh = json.load(open(tmp_path / "tiny" / "eval-600.json"))
    assert fresh["env_steps"] == 600 and fresh["episodes"] == 2
    assert open(tmp_path / "tiny" / "eval.json").read() == before
    missing = run_task(f"--logdir={tmp_path}", "eval", "--run=nope")
    assert missing.returncode == 2
    assert "runs there, newest first: tiny" in missing.stderr


def _checkpoint_values(run_dir: str) -> dict:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    names = set(reader.get_variable_to_shape_map()) - {"_CHECKPOINTABLE_OBJECT_GRAPH"}
    return {name: reader.get_tensor(name) for name in names}  # the graph holds Keras' layer names


def test_a_run_is_the_same_whether_env_processes_wait_at_a_barrier_or_not(tmp_path, monkeypatch):
    """The loop hands each env its next share as soon as its own is in: no change to a run.

    Iterations of 300 steps learn between them (new params each time), an evaluation
    at 600 stops the overlap once, and the last iteration is shorter (100 steps).
    """
    cfg = Config(
        total_steps=1000,
        num_envs=2,
        collect_steps=300,
        checkpoint_interval=300,
        eval_interval=600,
        eval_episodes=2,
        actor_layers=(16,),
        value_layers=(16,),
    )
    quiet = lambda msg: None  # noqa: E731
    pipelined = train.train(cfg, str(tmp_path / "pipelined"), log=quiet)

    pipelined_finish = actors.ActorPool.finish_collect

    def at_a_barrier(pool, then=None):
        results = pipelined_finish(pool)  # every env's share, then the next command
        if then is not None:
            pool.start_collect(*then)
        return results

    monkeypatch.setattr(actors.ActorPool, "finish_collect", at_a_barrier)
    barrier = train.train(cfg, str(tmp_path / "barrier"), log=quiet)
    assert pipelined == barrier
    first, second = (_checkpoint_values(str(tmp_path / run)) for run in ("pipelined", "barrier"))
    assert first.keys() == second.keys()
    for name in first:
        assert np.array_equal(first[name], second[name]), name
    # The evaluation due at 600 is written at the step it ran, and the final one at the end.
    evals = evaluate.read_scalars(str(tmp_path / "pipelined" / "eval"))["Eval/AverageReturn"]
    assert [step for step, _ in evals] == [600, 1000]


def test_an_env_that_is_not_a_grasp_env_trains(tmp_path):
    """Any gym id with a flat float observation and a Box action (docs/architecture.md):
    made to be checked, trained, evaluated without a success signal."""
    env_id = "InvertedPendulumBulletEnv-v0"
    cfg = Config(
        env_id=env_id,
        total_steps=200,
        num_envs=1,
        collect_steps=100,
        checkpoint_interval=100,
        eval_interval=0,
        eval_episodes=1,
        actor_layers=(8,),
        value_layers=(8,),
    )
    envs.check_spaces(env_id)
    result = train.train(cfg, str(tmp_path / "pendulum"), log=lambda msg: None)
    assert result["env_steps"] == 200 and result["success_rate"] is None
