"""Distributed throughput: env steps/s collected and trained with 1 and 2 collectors.

For each collector count, one short `task.py distributed` run on 127.0.0.1 (a
Reverb server, the collectors, one learner; default agent settings): the sum of
the collectors' Metrics/EnvStepsPerSecond, and the learner's env steps trained
per second, first iteration left out. Then the learner's own capacity: PPO
updates on a ready batch, with no collection beside it. docs/distributed.md turns
these into a scaling model. Usage:

    python bench/distributed.py --collectors 1 2 --steps 20480
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _mean_after_first(points) -> float:
    values = [value for _, value in points[1:]] or [value for _, value in points]
    return statistics.fmean(values)


def distributed_speeds(collectors: int, steps: int) -> tuple[float, float]:
    """(env steps/s collected by all collectors, env steps/s trained by the learner)."""
    from trainer import evaluate, launch

    with tempfile.TemporaryDirectory() as logdir:
        flags = [
            f"--logdir={logdir}",
            "--run=bench",
            f"--total_steps={steps}",
            "--eval_interval=0",
            "--eval_episodes=2",
            f"--checkpoint_interval={10 * steps}",
        ]
        code = launch.Supervisor(flags, collectors, log=lambda _: None).run()
        if code != 0:
            raise SystemExit(f"distributed run with {collectors} collectors failed ({code})")
        train_dir = os.path.join(logdir, "bench", "train")
        learned = _mean_after_first(evaluate.read_scalars(train_dir)["Metrics/EnvStepsPerSecond"])
        collected = sum(
            _mean_after_first(
                evaluate.read_scalars(os.path.join(train_dir, f"collector-{task}"))[
                    "Metrics/EnvStepsPerSecond"
                ]
            )
            for task in range(collectors)
        )
    return collected, learned


def learner_capacity(iterations: int = 5) -> float:
    """Env steps/s the PPO learner trains on when a batch is always ready."""
    import numpy as np
    import tensorflow as tf
    from tf_agents.specs import tensor_spec

    from trainer import agents, config, distributed, train

    cfg = config.Config()
    time_step_spec, action_spec = distributed._specs(cfg.env_id)  # noqa: SLF001
    agent = agents.create(cfg, time_step_spec, action_spec, tf.Variable(0, dtype=tf.int64))
    learner = train._Learner(cfg, agent)  # noqa: SLF001
    batch = [cfg.num_envs, cfg.collect_steps // cfg.num_envs]
    spec = agent.collect_data_spec
    spec = spec.replace(
        policy_info={k: v for k, v in spec.policy_info.items() if k != "value_prediction"}
    )
    rng = np.random.default_rng(0)

    def sample(s):
        shape = batch + list(s.shape)
        if s.dtype.is_integer:
            return tf.ones(shape, s.dtype)  # StepType.MID
        return tf.constant(rng.standard_normal(shape), s.dtype)

    experience = tf.nest.map_structure(sample, tensor_spec.from_spec(spec))
    learner.learn(experience, cfg.collect_steps)  # traces
    start = time.time()
    for _ in range(iterations):
        learner.learn(experience, cfg.collect_steps)
    return iterations * cfg.collect_steps / (time.time() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--collectors", type=int, nargs="+", default=[1, 2], help="counts to run")
    parser.add_argument("--steps", type=int, default=20_480, help="env steps per run")
    args = parser.parse_args()
    rows = []
    for count in args.collectors:
        print(f"Distributed run: {count} collector(s), {args.steps:,} env steps ...", flush=True)
        rows.append((count, *distributed_speeds(count, args.steps)))
    print("Learner capacity: PPO updates on ready batches ...", flush=True)
    capacity = learner_capacity()
    print(f"{os.cpu_count()} cores; default PPO settings; collectors use the TF collect policy")
    print("collectors  collected env steps/s  trained env steps/s  per collector")
    for count, collected, learned in rows:
        print(f"{count:10d}  {collected:21,.0f}  {learned:19,.0f}  {collected / count:13,.0f}")
    print(f"learner capacity (batch always ready): {capacity:,.0f} env steps/s")
    print(f"collectors one learner can keep up with: {capacity / (rows[0][1] / rows[0][0]):.0f}")


if __name__ == "__main__":
    main()
