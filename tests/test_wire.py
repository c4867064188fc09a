"""trainer/wire.py in-process: what crosses Reverb comes back as it went, and never as pickle."""

from __future__ import annotations

import io

import numpy as np
import pytest
from tf_agents.specs import tensor_spec
from tf_agents.trajectories import time_step as ts

from trainer import agents, config, env_process, wire


def _params(normalized: bool) -> dict:
    """A numpy actor's parameters as the agents module gives them, for a tiny PPO agent."""
    import tensorflow as tf

    obs = tensor_spec.TensorSpec((5,), tf.float32, "observation")
    action = tensor_spec.BoundedTensorSpec((2,), tf.float32, -1.0, 1.0)
    cfg = config.for_agent(
        actor_layers=(4, 3), value_layers=(4,), normalize_observations=normalized
    )
    agent = agents.create(cfg, ts.time_step_spec(obs), action, tf.Variable(0, dtype=tf.int64))
    return agents.actor_params(agent)


@pytest.mark.parametrize("normalized", [True, False])
def test_parameters_come_back_as_they_went(normalized):
    params = _params(normalized)
    back = wire.unpack_params(wire.pack_params(params))
    assert back.keys() == params.keys()
    assert (back["activation"], back["kind"], back["obs_clip"]) == (
        params["activation"],
        params["kind"],
        params["obs_clip"],
    )
    for (kernel, bias), (kernel2, bias2) in zip(params["hidden"], back["hidden"], strict=True):
        assert np.array_equal(kernel, kernel2) and np.array_equal(bias, bias2)
    assert all(np.array_equal(a, b) for a, b in zip(params["head"], back["head"], strict=True))
    for key in ("obs_mean", "obs_std"):
        assert (back[key] is None) == (params[key] is None)
        if params[key] is not None:
            assert np.array_equal(back[key], params[key])


def test_parameters_that_would_need_pickle_are_refused():
    """A reader runs no code it receives: an object array is not read."""
    buffer = io.BytesIO()
    np.savez(buffer, activation=np.array([object()], dtype=object))
    blob = np.frombuffer(buffer.getvalue(), np.uint8)
    with pytest.raises(ValueError, match="allow_pickle"):
        wire.unpack_params(blob)


def test_episodes_keep_return_length_and_success_or_its_absence():
    episodes = [
        env_process.Episode(9_000.5, 207, True),
        env_process.Episode(-1_000.0, 208, False),
        env_process.Episode(3.25, 40, None),  # an env without a success flag
    ]
    rows = wire.pack_episodes(episodes)
    assert rows.shape == (3, wire.EPISODE_FIELDS) and rows.dtype == np.float32
    assert wire.unpack_episodes(rows) == episodes
    assert wire.unpack_episodes(wire.pack_episodes([])) == []


def test_the_segment_item_has_the_local_segments_fields_the_version_and_the_episodes():
    import tensorflow as tf

    obs = tensor_spec.TensorSpec((5,), tf.float32, "observation")
    action = tensor_spec.BoundedTensorSpec((2,), tf.float32, -1.0, 1.0)
    item = wire.signature(64, ts.time_step_spec(obs), action)
    assert item["observation"].shape == [64, 5] and item["action"].shape == [64, 2]
    assert item["policy_info"]["dist_params"]["scale"].shape == [64, 2]
    assert item["version"].shape == [] and item["episodes"].shape.as_list() == [None, 3]
