"""What travels through Reverb: segment items, transitions and their reports, the
actor's parameters, episodes.

A segment item is one env's segment as the local loop's env processes return it
(env_process.EnvRunner.collect), plus the policy version it was collected with and the
episodes that ended in it. An algorithm that replays (sac.py) gets transitions instead,
two steps each, and a report per segment. Parameters travel as np.savez bytes: arrays and strings,
never pickle, so a reader runs no code it receives.
"""

from __future__ import annotations

import io

import numpy as np
import tensorflow as tf

from trainer import env_process

# Per episode: return, length, success (1, 0, or -1 for an env without one).
EPISODE_FIELDS = 3


def _steps(length: int, time_step_spec, action_spec) -> dict:
    """A run of `length` steps of one env: the Trajectory fields but the policy's info."""
    obs, act = time_step_spec.observation, action_spec
    step = lambda shape, dtype: tf.TensorSpec([length, *shape], dtype)  # noqa: E731
    return {
        "step_type": step([], tf.int32),
        "observation": step(obs.shape, obs.dtype),
        "action": step(act.shape, act.dtype),
        "next_step_type": step([], tf.int32),
        "reward": step([], tf.float32),
        "discount": step([], tf.float32),
    }


def signature(length: int, time_step_spec, action_spec) -> dict:
    """The segment item: the local loop's segment fields, the version, the episodes."""
    dist = tf.TensorSpec([length, *action_spec.shape], action_spec.dtype)
    return {
        **_steps(length, time_step_spec, action_spec),
        "policy_info": {"dist_params": {"loc": dist, "scale": dist}},
        "version": tf.TensorSpec([], tf.int64),
        "episodes": tf.TensorSpec([None, EPISODE_FIELDS], tf.float32),
    }


# The fields of a replayed transition, and of each step a collector writes for it.
TRANSITION_FIELDS = ("step_type", "observation", "action", "next_step_type", "reward", "discount")


def transition_signature(time_step_spec, action_spec) -> dict:
    """A replayed transition: two consecutive steps of one env, within one episode."""
    return _steps(2, time_step_spec, action_spec)


def report_signature() -> dict:
    """What a collector reports per segment it wrote as transitions: its env steps, the
    policy version it collected them with, the episodes that ended in them."""
    return {
        "steps": tf.TensorSpec([], tf.int64),
        "version": tf.TensorSpec([], tf.int64),
        "episodes": tf.TensorSpec([None, EPISODE_FIELDS], tf.float32),
    }


def pack_params(params: dict) -> np.ndarray:
    """The numpy actor's parameters as bytes (np.savez: arrays and strings, no pickle)."""
    arrays = {
        "activation": np.array(params["activation"]),
        "kind": np.array(params["kind"]),
        "obs_clip": np.array(params["obs_clip"]),
    }
    for i, (kernel, bias) in enumerate(params["hidden"]):
        arrays[f"hidden{i}_kernel"], arrays[f"hidden{i}_bias"] = kernel, bias
    for i, weight in enumerate(params["head"]):
        arrays[f"head{i}"] = weight
    for key in ("obs_mean", "obs_std"):
        if params[key] is not None:
            arrays[key] = params[key]
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return np.frombuffer(buffer.getvalue(), np.uint8)


def unpack_params(blob: np.ndarray) -> dict:
    data = np.load(io.BytesIO(blob.tobytes()), allow_pickle=False)
    hidden = sum(1 for k in data.files if k.endswith("_kernel"))
    return {
        "activation": str(data["activation"]),
        "kind": str(data["kind"]),
        "hidden": [[data[f"hidden{i}_kernel"], data[f"hidden{i}_bias"]] for i in range(hidden)],
        "head": [data[f"head{i}"] for i in range(sum(k.startswith("head") for k in data.files))],
        "obs_mean": data["obs_mean"] if "obs_mean" in data.files else None,
        "obs_std": data["obs_std"] if "obs_std" in data.files else None,
        "obs_clip": float(data["obs_clip"]),
    }


def pack_episodes(finished: list[env_process.Episode]) -> np.ndarray:
    rows = [[e.ret, e.length, -1.0 if e.success is None else float(e.success)] for e in finished]
    return np.asarray(rows, np.float32).reshape(-1, EPISODE_FIELDS)


def unpack_episodes(rows: np.ndarray) -> list[env_process.Episode]:
    return [env_process.Episode(float(r), int(n), None if s < 0 else bool(s)) for r, n, s in rows]
