"""trainer/replay_table.py against a real Reverb server on loopback: what collectors
write, what the SAC learner samples and trains on."""

from __future__ import annotations

import numpy as np
import pytest
import reverb
import tensorflow as tf
from tf_agents.specs import array_spec, tensor_spec
from tf_agents.trajectories import time_step as ts

from trainer import agents, env_process, launch, learner, replay_table
from trainer.config import for_agent

OBS = array_spec.BoundedArraySpec((3,), np.float32, -100.0, 100.0, name="observation")
ACTION = array_spec.BoundedArraySpec((1,), np.float32, -1.0, 1.0, name="action")
MID, LAST, FIRST = env_process.MID, env_process.LAST, env_process.FIRST


def _cfg(**changes):
    tiny = dict(learning_starts=0, batch_size=16, actor_layers=(16,), value_layers=(16,))
    return for_agent("sac", **{**tiny, "replay_capacity": 1000, **changes})


def _serve(port: int) -> reverb.Server:
    table = replay_table.table(_cfg(), ts.time_step_spec(OBS), ACTION)
    return reverb.Server(tables=[table], port=port)


@pytest.fixture
def server():
    port = launch.free_port()
    server = _serve(port)
    yield f"127.0.0.1:{port}"
    server.stop()


def _agent(cfg):
    tf.keras.utils.set_random_seed(0)
    return agents.create(
        cfg,
        tensor_spec.from_spec(ts.time_step_spec(OBS)),
        tensor_spec.from_spec(ACTION),
        tf.Variable(0, dtype=tf.int64),
    )


def _segment(start: int, count: int, last: int | None = None) -> dict:
    """Steps `start`.. of one env (observation of step t: 3t, 3t+1, 3t+2); step `last`
    ends an episode, and the next step is the next episode's first."""
    t = np.arange(start, start + count)
    step_type = np.full(count, MID, np.int32)
    next_step_type = np.full(count, MID, np.int32)
    if last is not None:
        step_type[last - start], next_step_type[last - start - 1] = LAST, LAST
        step_type[last - start + 1], next_step_type[last - start] = FIRST, FIRST
    return {
        "step_type": step_type,
        "observation": (3 * t[:, None] + np.arange(3)).astype(np.float32),
        "action": np.zeros((count, 1), np.float32),
        "policy_info": (),
        "next_step_type": next_step_type,
        "reward": t.astype(np.float32),
        "discount": np.ones(count, np.float32),
    }


def _write(address: str, segments: list[tuple[int, dict]]) -> None:
    writer = replay_table.TransitionWriter(reverb.Client(address), 2)
    for index, segment in segments:
        writer.write(index, segment)
    writer.flush()


def test_every_two_steps_of_one_env_are_a_transition_but_an_episodes_boundary(server):
    # Env 0: steps 0-9 (step 4 ends an episode), then 10-14 in its next segment; env 1's
    # steps 100-104 in between.
    _write(server, [(0, _segment(0, 10, last=4)), (1, _segment(100, 5)), (0, _segment(10, 5))])
    client = reverb.Client(server)
    expected = {(t, t + 1) for t in range(14) if t != 4} | {(t, t + 1) for t in range(100, 104)}
    assert client.server_info()[replay_table.REPLAY].current_size == len(expected)
    drawn = {
        tuple(int(x) for x in sample.data["observation"][:, 0] // 3)
        for sample in client.sample(
            replay_table.REPLAY, 2000, emit_timesteps=False, unpack_as_table_signature=True
        )
    }  # each of the 17 missed about once in 1e51
    assert drawn == expected


def test_the_learner_trains_on_batches_it_samples_from_the_table(server):
    cfg = _cfg(train_ratio=0.5)
    _write(server, [(0, _segment(0, 40, last=20)), (1, _segment(100, 40))])
    agent = _agent(cfg)
    sac = learner.create(cfg, agent, replay_table.ReverbReplay(server, cfg.algo.batch_size, 30))
    assert sac.tracked() == {}  # the table is the server's
    pairs, weights = tf.function(sac.sample)()
    assert pairs.observation.shape == (16, 2, 3) and pairs.observation.dtype == tf.float32
    first, second = pairs.observation[:, 0, 0].numpy(), pairs.observation[:, 1, 0].numpy()
    np.testing.assert_array_equal(second, first + 3)
    np.testing.assert_array_equal(weights.numpy(), np.ones(16, np.float32))
    assert sac.learn(None, 64) is not None and int(agent.train_step_counter) == 32


def test_no_gradient_step_until_the_table_holds_learning_starts(server):
    cfg = _cfg(learning_starts=100)
    _write(server, [(0, _segment(0, 40))])
    agent = _agent(cfg)
    sac = learner.create(cfg, agent, replay_table.ReverbReplay(server, cfg.algo.batch_size, 30))
    assert sac.learn(None, 40) is None and int(agent.train_step_counter) == 0


def test_a_server_that_does_not_answer_is_named_lost():
    port = launch.free_port()
    server = _serve(port)
    replay = replay_table.ReverbReplay(f"127.0.0.1:{port}", 16, 30)
    assert replay.size() == 0
    server.stop()
    with pytest.raises(replay_table.LostServer):
        replay.size()
