"""The agent's policies in numpy, for the env processes: they step an env with a copy of
the policy's weights (agents.actor_params) and import no TensorFlow, which took 5-7 s of
each env process's start and a few hundred MB of its memory."""

from __future__ import annotations

from typing import Any

import numpy as np


class NumpyActor:
    """The agent's collect (sampling) and greedy policies, in numpy, for one observation."""

    def __init__(self, params: dict[str, Any], action_minimum, action_maximum, seed: int):
        self._normal = params["kind"] == "NormalProjectionNetwork"
        self._hidden = [
            (np.asarray(k, np.float32), np.asarray(b, np.float32)) for k, b in params["hidden"]
        ]
        self._head = [np.asarray(w, np.float32) for w in params["head"]]
        self._obs_mean, self._obs_std = params["obs_mean"], params["obs_std"]
        self._obs_clip = params["obs_clip"]
        self._mid = ((np.asarray(action_maximum) + np.asarray(action_minimum)) / 2).astype(
            np.float32
        )
        self._mag = ((np.asarray(action_maximum) - np.asarray(action_minimum)) / 2).astype(
            np.float32
        )
        self._act = {"tanh": np.tanh, "relu": lambda x: np.maximum(x, 0.0)}[params["activation"]]
        if self._normal:  # the scale does not depend on the observation
            self._scale = np.logaddexp(0.0, self._head[2]).astype(np.float32)  # softplus
        self._rng = np.random.default_rng(seed)

    def distribution(self, observation):
        """(loc, scale) of the policy's Normal before any squashing."""
        x = np.asarray(observation, np.float32)
        if self._obs_mean is not None:
            x = np.clip((x - self._obs_mean) / self._obs_std, -self._obs_clip, self._obs_clip)
        for kernel, bias in self._hidden:
            x = self._act(x @ kernel + bias)
        if self._normal:
            loc = self._mid + self._mag * np.tanh(x @ self._head[0] + self._head[1])
            return loc, self._scale
        loc, log_scale = np.split(x @ self._head[0] + self._head[1], 2, axis=-1)
        return loc, np.exp(np.clip(log_scale, -20, 2))

    def action(self, observation, greedy: bool = False):
        """(action, policy_info) as the TF collect policy (or greedy policy) would give."""
        loc, scale = self.distribution(observation)
        sample = loc if greedy else loc + scale * self._rng.standard_normal(loc.shape, np.float32)
        if self._normal:
            return sample, {"dist_params": {"loc": loc, "scale": scale}}
        return self._mid + self._mag * np.tanh(sample), ()
