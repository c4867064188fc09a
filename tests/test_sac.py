"""The SAC learner in-process: what it samples, when it trains, what it keeps."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.specs import array_spec, tensor_spec
from tf_agents.trajectories import time_step as ts

from trainer import agents, learner
from trainer.config import for_agent

OBS = array_spec.BoundedArraySpec((3,), np.float32, -100.0, 100.0, name="observation")
ACTION = array_spec.BoundedArraySpec((1,), np.float32, -1.0, 1.0, name="action")
MID, LAST, FIRST = int(ts.StepType.MID), int(ts.StepType.LAST), int(ts.StepType.FIRST)


def _learner(**changes):
    tf.keras.utils.set_random_seed(0)
    settings = dict(
        num_envs=1, learning_starts=0, batch_size=16, actor_layers=(16,), value_layers=(16,)
    )
    cfg = for_agent("sac", **{**settings, **changes})
    agent = agents.create(
        cfg,
        tensor_spec.from_spec(ts.time_step_spec(OBS)),
        tensor_spec.from_spec(ACTION),
        tf.Variable(0, dtype=tf.int64),
    )
    return learner.create(cfg, agent), agent


def _segment(count: int, start: int = 0, reward=None, discount=1.0):
    """`count` MID steps whose observations count up from `start` (step t: 3t, 3t+1, 3t+2)."""
    t = np.arange(start, start + count)
    return {
        "step_type": np.full(count, MID, np.int32),
        "observation": (3 * t[:, None] + np.arange(3)).astype(np.float32),
        "action": np.zeros((count, 1), np.float32),
        "policy_info": (),
        "next_step_type": np.full(count, MID, np.int32),
        "reward": (t if reward is None else np.full(count, reward)).astype(np.float32),
        "discount": np.full(count, discount, np.float32),
    }


def _experience(agent, segment):
    return learner.to_trajectory([segment], agent.collect_data_spec)


def test_samples_are_consecutive_steps_and_pairs_that_are_no_transition_weigh_nothing():
    sac, agent = _learner(batch_size=512)  # every one of the 39 pairs is drawn
    segment = _segment(40)
    segment["next_step_type"][9], segment["step_type"][10] = LAST, LAST  # step 10 ends one
    segment["next_step_type"][10], segment["step_type"][11] = FIRST, FIRST
    segment["step_type"][30] = FIRST  # a resume: new episodes start after step 29's row
    sac.learn(_experience(agent, segment), 0)  # adds, no gradient step is due
    pairs, weights = tf.function(sac.sample)()
    first, second = pairs.observation[:, 0, 0].numpy(), pairs.observation[:, 1, 0].numpy()
    np.testing.assert_array_equal(second, first + 3)
    assert {30, 87} <= set(first)  # steps 10 and 29 (each missed 1 time in 500,000)
    np.testing.assert_array_equal(weights.numpy(), (~np.isin(first, [30, 87])).astype(np.float32))


def test_no_gradient_step_before_learning_starts_then_train_ratio_per_step():
    sac, agent = _learner(learning_starts=50, train_ratio=0.5)
    assert sac.learn(_experience(agent, _segment(40)), 40) is None
    assert int(agent.train_step_counter) == 0
    loss = sac.learn(_experience(agent, _segment(15, start=40)), 15)
    assert loss is not None and int(agent.train_step_counter) == 7  # 7.5 due
    sac.learn(_experience(agent, _segment(1, start=55)), 1)
    assert int(agent.train_step_counter) == 8  # the half step left over, and this one's


def test_the_critic_learns_the_reward_of_a_last_step():
    # Every step pays 1 and ends its episode's value (discount 0): Q is 1 everywhere.
    sac, agent = _learner(learning_rate=3e-3)
    first = sac.learn(_experience(agent, _segment(64, reward=1.0, discount=0.0)), 1)
    for _ in range(6):
        last = sac.learn(_experience(agent, _segment(1, reward=1.0, discount=0.0)), 50)
    assert float(last.extra.critic_loss) < 0.05 * float(first.extra.critic_loss)


def test_a_restored_learner_has_the_same_replay_buffer(tmp_path):
    sac, agent = _learner()
    sac.learn(_experience(agent, _segment(30)), 0)
    tf.train.Checkpoint(**sac.tracked()).save(str(tmp_path / "ckpt"))
    restored, _ = _learner()
    tf.train.Checkpoint(**restored.tracked()).restore(tf.train.latest_checkpoint(tmp_path))
    assert restored.replay.size() == 30
    pairs, _ = tf.function(restored.sample)()
    assert set(pairs.observation[:, 0, 0].numpy()) <= set(range(0, 90, 3))
