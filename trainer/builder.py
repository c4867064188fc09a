"""One place that puts a run together: the seed, the env processes, the agent for their
specs with the run's counters, its learner and its record.

`make train` (train.py), the distributed learner (distributed.py), `make eval` and the
learner bench get their parts here; they differ only in how many env processes they
start, which they pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator

import tensorflow as tf

from trainer import actors, agents, averaging, record
from trainer import learner as learner_lib
from trainer.config import Config


def seed(cfg: Config) -> None:
    """Sets TensorFlow's threads, seeds Python, numpy and TensorFlow (unseeded Keras
    initializers draw from Python's random), and makes TensorFlow's ops deterministic
    when the run asks for it."""
    agents.start_tensorflow(cfg.intra_op_threads)
    tf.keras.utils.set_random_seed(cfg.seed)
    if cfg.deterministic:
        tf.config.experimental.enable_op_determinism()


@dataclasses.dataclass
class Agent:
    """An agent built for a pool's env specs, with the run's step counters."""

    pool: actors.ActorPool
    agent: object
    train_step: tf.Variable
    env_steps: tf.Variable
    average: averaging.PolicyAverage | None = None

    def checkpointed(self) -> dict:
        """What every checkpoint of the run holds, by name."""
        held = {"agent": self.agent, "env_steps": self.env_steps, "train_step": self.train_step}
        return averaging.tracked(held, self.average)

    def params(self):
        """The actor's current parameters, as the env processes take them to collect."""
        return agents.actor_params(self.agent)

    def episodes(self, count: int):
        """`count` episodes of the greedy policy (averaging.py) in the pool's env processes."""
        with averaging.greedy_weights(self.average):
            params = self.params()
        return self.pool.evaluate(params, count)


@contextlib.contextmanager
def agent(cfg: Config, num_envs: int, first_index: int = 0) -> Iterator[Agent]:
    """The seeded agent of `cfg` and `num_envs` env processes (from process index
    `first_index` on) that give it its specs; the processes stop on leaving."""
    seed(cfg)
    with actors.ActorPool(cfg.env_id, num_envs, cfg.seed, first_index=first_index) as pool:
        built, train_step, env_steps = agents.for_pool(cfg, pool)
        average = averaging.create(
            agents.actor_variables(built), cfg.policy_average, cfg.total_steps
        )
        yield Agent(pool, built, train_step, env_steps, average)


@dataclasses.dataclass
class Run:
    """A run being trained: its agent and env processes, its learner and its record.
    `result` holds the final evaluation once the loop has ended without an error."""

    parts: Agent
    learner: object
    recorder: record.RunRecorder
    result: dict | None = None


@contextlib.contextmanager
def run(
    cfg: Config,
    run_dir: str,
    num_envs: int,
    first_index: int = 0,
    tracked: dict | None = None,
    log=None,
    syncer=None,
    replay=None,
) -> Iterator[Run]:
    """The run in `run_dir`, resumed from its checkpoint if it has one. `tracked` adds the
    loop's own variables to its checkpoints; `replay` is where a replaying learner samples
    (learner.create). On leaving, the record keeps what was
    learned (also after an error); a loop that ended normally is evaluated a last time."""
    with agent(cfg, num_envs, first_index) as parts:
        learner = learner_lib.create(cfg, parts.agent, replay)
        recorder = record.RunRecorder(
            cfg,
            run_dir,
            parts.agent,
            {**parts.checkpointed(), **learner.tracked(), **(tracked or {})},
            episodes=parts.episodes,
            log=log,
            average=parts.average,
            syncer=syncer,
        )
        built = Run(parts, learner, recorder)
        try:
            yield built
        finally:
            recorder.close()
        built.result = recorder.final_eval()
