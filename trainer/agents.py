"""The agent of any algorithm (learner.ALGORITHMS), and the numpy copy of its actor that
env processes run.

A TF policy call costs about 1 ms, three times a Kuka step, so collection runs
the actor's few matrix products in numpy inside each env process; the test suite
checks that the numpy actor matches the TF policy's distribution.
"""

from __future__ import annotations

import functools
import inspect
import sys
import weakref
from typing import Any

import tensorflow as tf
from tf_agents.policies import greedy_policy as greedy_policy_lib

from trainer import learner
from trainer.config import Config

# Each agent's actor network, kept as `create` built it: SacAgent holds it privately.
_ACTOR_NETS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class _LinearDecay(tf.keras.optimizers.schedules.LearningRateSchedule):
    """`initial` times the share of the run still to go, read from `remaining()` (1 to 0)."""

    def __init__(self, initial: float, remaining):
        self._initial, self._remaining = initial, remaining

    def __call__(self, step):
        del step  # the optimizer's own count; the run's progress is in env steps
        return self._initial * self._remaining()

    def get_config(self):
        return {"initial": self._initial}


def create(cfg: Config, time_step_spec, action_spec, train_step: tf.Variable, env_steps=None):
    """The tf-agents agent named by `cfg.agent`, initialized.

    `env_steps` is the run's env-step counter, which the linear schedules (of the learning
    rate and of PPO's entropy bonus) read to know how much of the run is left.
    """
    remaining = None
    if env_steps is not None:
        # Past the end, as a finished run resumed with a larger --total_steps was, at 0.
        remaining = lambda: tf.maximum(  # noqa: E731
            1.0 - tf.cast(env_steps, tf.float32) / cfg.total_steps, 0.0
        )
    rate = cfg.learning_rate
    if cfg.lr_schedule == "linear":
        if remaining is None:
            raise ValueError("--lr_schedule=linear needs the run's env steps (its progress)")
        rate = _LinearDecay(cfg.learning_rate, remaining)
    optimizer = lambda: tf.keras.optimizers.Adam(learning_rate=rate)  # noqa: E731
    build = learner.algorithm(cfg.agent).build_agent
    agent, actor_net = build(cfg, time_step_spec, action_spec, optimizer, train_step, remaining)
    agent.initialize()
    _ACTOR_NETS[agent] = actor_net
    return agent


def for_pool(cfg: Config, pool):
    """(agent, train_step, env_steps): an agent for `pool`'s env specs and the run's counters."""
    from tf_agents.specs import tensor_spec

    train_step = tf.Variable(0, dtype=tf.int64, name="train_step")
    env_steps = tf.Variable(0, dtype=tf.int64, name="env_steps")
    agent = create(
        cfg,
        tensor_spec.from_spec(pool.time_step_spec),
        tensor_spec.from_spec(pool.action_spec),
        train_step,
        env_steps=env_steps,
    )
    return agent, train_step, env_steps


def start_tensorflow(intra_op_threads: int) -> str:
    """Sets TensorFlow's intra-op threads (0: its own count) unless it has started, and
    says what the learner's ops run on: the GPUs TensorFlow sees, else the CPU."""
    threading = tf.config.threading
    if threading.get_intra_op_parallelism_threads() != intra_op_threads:
        try:
            threading.set_intra_op_parallelism_threads(intra_op_threads)
        except RuntimeError:  # started already, in-process: a test, a bench
            print(
                f"warning: TensorFlow has started with {_threads(threading)}; "
                f"--intra_op_threads={intra_op_threads} applies from a new process",
                file=sys.stderr,
                flush=True,
            )
    gpus = tf.config.list_physical_devices("GPU")
    where = ", ".join(gpu.name for gpu in gpus) if gpus else "the CPU (no GPU visible)"
    return f"{where}, {_threads(threading)}"


def _threads(threading) -> str:
    count = threading.get_intra_op_parallelism_threads()
    return f"{count} intra-op thread{'s' if count > 1 else ''}" if count else "one per core"


def greedy_policy(agent):
    """The policy to evaluate and export: the mode of the agent's action distribution."""
    if isinstance(agent.policy, greedy_policy_lib.GreedyPolicy):
        return agent.policy  # PPOAgent's policy is greedy already
    return greedy_policy_lib.GreedyPolicy(agent.policy)


def actor_variables(agent) -> list[tf.Variable]:
    """The actor network's variables, which the greedy policy and the numpy actor read."""
    return _ACTOR_NETS[agent].variables


def actor_params(agent) -> dict[str, Any]:
    """Numpy copies of what the collect policy needs: weights and observation statistics."""
    encoder, projection = _ACTOR_NETS[agent].layers
    dense = [layer for layer in encoder.layers if isinstance(layer, tf.keras.layers.Dense)]
    return {
        "activation": dense[0].activation.__name__,
        "hidden": [layer.get_weights() for layer in dense],
        "head": [w for layer in projection.layers for w in layer.get_weights()],
        "kind": type(projection).__name__,
        **_observation_scaling(agent.collect_policy.observation_normalizer, agent.time_step_spec),
    }


def _observation_scaling(normalizer, time_step_spec) -> dict[str, Any]:
    """The policy's observation normalization, (x - obs_mean) / obs_std clipped to obs_clip.

    Read through the normalizer's public `normalize`, as the policy calls it: of zeros
    (-mean / std) and, uncentered, of ones (1 / std); its epsilon is inside that std.
    """
    if normalizer is None:
        return {"obs_mean": None, "obs_std": None, "obs_clip": 0.0}
    spec = time_step_spec.observation
    unclipped = functools.partial(normalizer.normalize, clip_value=0)
    inverse_std = unclipped(tf.ones((1, *spec.shape), spec.dtype), center_mean=False)
    shifted = unclipped(tf.zeros((1, *spec.shape), spec.dtype))
    std = 1.0 / tf.nest.flatten(inverse_std)[0].numpy()[0]
    clip = inspect.signature(normalizer.normalize).parameters["clip_value"].default
    return {
        "obs_mean": -tf.nest.flatten(shifted)[0].numpy()[0] * std,
        "obs_std": std,
        "obs_clip": float(clip),
    }
