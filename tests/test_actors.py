"""The env-process pool, in-process with real pybullet env processes and tiny values."""

from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from trainer import actors, agents
from trainer.config import Config

pytestmark = pytest.mark.slow  # each pool starts real env processes (a few seconds)

CFG = Config(num_envs=2, actor_layers=(16,), value_layers=(16,))


def _collect_three(pipelined: bool):
    """Three collections of 150 steps per env, as the training loop runs them."""
    with actors.ActorPool(CFG.env_id, CFG.num_envs, seed=7) as pool:
        tf.keras.utils.set_random_seed(7)  # the same initial policy both times
        agent, _, _ = agents.for_pool(CFG, pool)
        params = agents.actor_params(agent)
        pool.start_collect(params, 150)
        rounds = []
        for index in range(3):
            then = (params, 150) if pipelined and index < 2 else None
            rounds.append(pool.finish_collect(then))
            if not pipelined and index < 2:
                pool.start_collect(params, 150)
    return rounds


def test_setting_each_env_collecting_as_it_finishes_collects_the_same_steps():
    # The training loop's speed-up (no barrier between iterations) must not change a run.
    barrier, pipelined = _collect_three(False), _collect_three(True)
    for rounds_a, rounds_b in zip(barrier, pipelined, strict=True):
        for (segment_a, episodes_a), (segment_b, episodes_b) in zip(
            rounds_a, rounds_b, strict=True
        ):
            assert segment_a.keys() == segment_b.keys()
            for name in ("observation", "action", "reward", "step_type", "discount"):
                np.testing.assert_array_equal(segment_a[name], segment_b[name])
            assert episodes_a == episodes_b
    assert barrier[2][0][0]["observation"].shape[0] == 150


def test_a_failing_env_process_is_named_in_one_line():
    with actors.ActorPool(CFG.env_id, CFG.num_envs, seed=0) as pool:
        agent, _, _ = agents.for_pool(CFG, pool)
        params = agents.actor_params(agent)
        params["hidden"] = [(np.zeros((1, 1)), np.zeros(1))]  # the wrong input size
        pool.start_collect(params, 10)
        with pytest.raises(actors.ActorError, match=r"^env process [01] failed: ValueError"):
            pool.finish_collect((params, 10))
