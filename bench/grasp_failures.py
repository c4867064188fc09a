"""Where a KukaGrasp-v0 policy misses: greedy episodes, split by success, with the block's
yaw in the gripper's frame at the last step before the scripted grasp.

The env observes that yaw (its last observation number); the fingers close across the
block only when it is about a right angle (docs/agent.md, seed 11). A policy that grasps
some blocks and not others shows it here: its misses end at another relative yaw.

    python -m bench.grasp_failures runs/ablation/600k/default-s11 --episodes 100
"""

from __future__ import annotations

import argparse
import os
import statistics

import numpy as np


def play(run_dir: str, episodes: int, seed: int) -> list[tuple[bool, float]]:
    """(success, |block yaw in the gripper's frame| at the last step) per greedy episode."""
    import gym
    import tensorflow as tf
    from tf_agents.trajectories import time_step as ts

    from trainer import envs
    from trainer.rundir import RunDir

    envs.register()
    env = gym.make(envs.DEFAULT_ENV_ID)
    env.seed(seed)
    policy = tf.saved_model.load(RunDir(run_dir).policy)
    rows = []
    for _ in range(episodes):
        observation, done, total, yaw = env.reset(), False, 0.0, 0.0
        step = ts.restart(tf.constant([observation], tf.float32), batch_size=1)
        while not done:
            action = policy.action(step, ()).action.numpy()[0]
            yaw = abs(float(observation[-1]))
            observation, reward, done, _ = env.step(action)
            total += reward
            step = ts.transition(
                tf.constant([observation], tf.float32), tf.constant([reward], tf.float32)
            )
        rows.append((total > envs.SUCCESS_REWARD, yaw))
    return rows


def describe(rows: list[tuple[bool, float]]) -> str:
    """Success rate, then the relative yaw's median and quartiles for hits and misses."""
    lines = [f"greedy success {sum(hit for hit, _ in rows)}/{len(rows)}"]
    for label, wanted in (("hits", True), ("misses", False)):
        yaws = [yaw for hit, yaw in rows if hit == wanted]
        if len(yaws) < 2:
            lines.append(f"{label}: {len(yaws)} episode(s)")
            continue
        q1, q3 = np.percentile(yaws, [25, 75])
        lines.append(
            f"{label}: {len(yaws)} episodes, |block yaw in gripper frame| at the last step "
            f"median {statistics.median(yaws):.2f} rad (quartiles {q1:.2f}-{q3:.2f})"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("run_dir", help="a finished KukaGrasp-v0 run (its policy/ is played)")
    parser.add_argument("--episodes", type=int, default=100, help="greedy episodes to play")
    parser.add_argument("--seed", type=int, default=1000, help="seed of the block placements")
    args = parser.parse_args(argv)
    out = os.dup(1)  # the report's; the env prints a line per grasp to stdout
    from trainer import envs

    envs.silence_env_prints()
    report = describe(play(args.run_dir, args.episodes, args.seed))
    os.write(out, (report + "\n").encode())


if __name__ == "__main__":
    main()
