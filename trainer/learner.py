"""The algorithms, in one table, and what their learners share.

Each algorithm is a module with `build_agent(cfg, time_step_spec, action_spec,
optimizer, train_step, remaining)` (its tf-agents agent and actor network;
`remaining()` is the share of the run still to go, for schedules, or None outside a
run) and a `Learner(cfg, agent)` with `learn(experience, new_steps)` (gradient steps
on collected [num_envs, T] segments; returns the last LossInfo or None) and
`tracked()` (what the run's checkpoint keeps besides the agent), and `REPLAYS`. The
local loop (train.py) gets its segments from env processes over pipes and hands them
to the `Learner`. So does the distributed learner (distributed.py) for an algorithm
that does not replay, taking each segment from Reverb once; for one that replays
(`REPLAYS`), the collectors write transitions into a Reverb replay table
(replay_table.py), which its `Learner(cfg, agent, replay)` samples, and `learn` gets
None and the new env steps. Each algorithm's defaults are config.AGENT_DEFAULTS'.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tf_agents.trajectories import trajectory

from trainer import ppo, sac
from trainer.config import Config

ALGORITHMS = {"ppo": ppo, "sac": sac}


def algorithm(name: str):
    """The module of the algorithm named `name` (ValueError if there is none)."""
    if name not in ALGORITHMS:
        raise ValueError(f"unknown agent {name!r}; choose one of {', '.join(ALGORITHMS)}")
    return ALGORITHMS[name]


def create(cfg: Config, agent, replay=None):
    """The learner of `cfg.agent` for `agent`; `replay` (for an algorithm that replays,
    in the distributed loop) is where it samples the collectors' transitions."""
    if replay is None:
        return algorithm(cfg.agent).Learner(cfg, agent)
    return algorithm(cfg.agent).Learner(cfg, agent, replay)


def to_trajectory(segments, data_spec):
    """Stacks per-env numpy segments into a [num_envs, T] Trajectory of tensors.

    Fields the segments lack (PPO's value predictions, which the learner adds) are
    left out of the result.
    """
    stacked = {
        name: tf.nest.map_structure(lambda *xs: np.stack(xs), *[s[name] for s in segments])
        for name in segments[0]
    }
    experience = trajectory.Trajectory(**stacked)
    spec = data_spec.replace(
        policy_info={k: data_spec.policy_info[k] for k in stacked["policy_info"]}
        if stacked["policy_info"]
        else ()
    )
    return tf.nest.map_structure(
        lambda x, s: tf.convert_to_tensor(x, dtype=s.dtype), experience, spec
    )
