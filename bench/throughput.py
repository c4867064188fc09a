"""End-to-end training throughput against the raw bound, measured in one run.

The raw bound is the env stepped with random actions in NUM_ENVS processes and
nothing else; training throughput is env steps per second of the training loop
(collection and learning) after its first iteration, read from the run's
`Metrics/EnvStepsPerSecond`. Usage:

    python bench/throughput.py --num_envs 2 --seconds 30 --train_steps 60000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _random_steps(env_id: str, seed: int, seconds: float, queue) -> None:
    import gym

    from trainer import envs

    envs.silence_env_prints()
    envs.seed_process(seed)
    env = gym.make(env_id)
    env.reset()
    steps, deadline = 0, time.time() + seconds
    while time.time() < deadline:
        _, _, done, _ = env.step(env.action_space.sample())
        steps += 1
        if done:
            env.reset()
    queue.put(steps)


def raw_bound(env_id: str, num_envs: int, seconds: float) -> float:
    """Env steps per second of `num_envs` processes stepping with random actions."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [
        ctx.Process(target=_random_steps, args=(env_id, i, seconds, queue)) for i in range(num_envs)
    ]
    for proc in procs:
        proc.start()
    total = sum(queue.get() for _ in procs)
    for proc in procs:
        proc.join()
    return total / seconds


def training_speed(env_id: str, num_envs: int, steps: int, agent: str) -> float:
    """Mean Metrics/EnvStepsPerSecond of a short training run, first iteration left out."""
    from trainer import config, evaluate, train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = config.Config(
            env_id=env_id,
            agent=agent,
            num_envs=num_envs,
            total_steps=steps,
            eval_interval=0,
            eval_episodes=num_envs,
            checkpoint_interval=10 * steps,
        )
        train.train(cfg, run_dir)
        scalars = evaluate.read_scalars(os.path.join(run_dir, "train"))
        speeds = [value for _, value in scalars["Metrics/EnvStepsPerSecond"]]
    if len(speeds) < 2:
        raise SystemExit("train_steps too small: need at least two iterations")
    return sum(speeds[1:]) / len(speeds[1:])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--env_id", default="KukaGrasp-v0", help="gym id of the env")
    parser.add_argument("--agent", default="ppo", help="agent to train (ppo or sac)")
    parser.add_argument("--num_envs", type=int, default=2, help="env processes")
    parser.add_argument("--seconds", type=float, default=30, help="length of the raw measurement")
    parser.add_argument("--train_steps", type=int, default=60_000, help="env steps to train")
    args = parser.parse_args()
    print(
        f"Raw bound: {args.num_envs} processes, random actions, {args.seconds:.0f} s ...",
        flush=True,
    )
    bound = raw_bound(args.env_id, args.num_envs, args.seconds)
    print(f"Training {args.agent} for {args.train_steps:,} env steps ...", flush=True)
    speed = training_speed(args.env_id, args.num_envs, args.train_steps, args.agent)
    print(f"env {args.env_id}, {args.num_envs} env processes, {os.cpu_count()} cores")
    print(f"raw bound (random actions): {bound:8,.0f} env steps/s")
    print(f"training ({args.agent}):        {speed:8,.0f} env steps/s")
    print(f"ratio:                      {speed / bound:8.2f}  (goal >= 0.80)")


if __name__ == "__main__":
    main()
