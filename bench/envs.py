"""Random-policy baselines of our KukaGrasp-v0 and pybullet's KukaBulletEnv-v0.

For each env, in its own process (the Kuka env uses pybullet's global client):
mean return, mean episode length, grasp success and env steps/s of uniform random
actions over EPISODES episodes. Usage:

    python -m bench.envs --episodes 100
"""

from __future__ import annotations

import argparse
import multiprocessing
import time

ENV_IDS = ("KukaGrasp-v0", "KukaBulletEnv-v0")


def _baseline(env_id: str, episodes: int, seed: int, queue) -> None:
    import gym

    from trainer import envs

    envs.silence_env_prints()
    envs.seed_process(seed)
    env = gym.make(env_id)
    env.seed(seed)
    env.action_space.seed(seed)
    returns, lengths, successes, steps = [], [], [], 0
    start = time.time()
    for _ in range(episodes):
        env.reset()
        done, total, length, reward = False, 0.0, 0, 0.0
        while not done:
            _, reward, done, _ = env.step(env.action_space.sample())
            total += reward
            length += 1
        returns.append(total)
        lengths.append(length)
        successes.append(envs.is_success(env_id, reward))
        steps += length
    queue.put((returns, lengths, successes, steps / (time.time() - start)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per env")
    parser.add_argument("--seed", type=int, default=0, help="seed of block placement and actions")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    print(f"Random actions, {args.episodes} episodes per env, seed {args.seed}")
    print(f"{'env':<18} {'mean return':>12} {'mean length':>12} {'success':>8} {'steps/s':>8}")
    for env_id in ENV_IDS:
        queue = ctx.Queue()
        proc = ctx.Process(target=_baseline, args=(env_id, args.episodes, args.seed, queue))
        proc.start()
        returns, lengths, successes, speed = queue.get()
        proc.join()
        mean = lambda xs: sum(xs) / len(xs)
        print(
            f"{env_id:<18} {mean(returns):>12,.0f} {mean(lengths):>12.0f} "
            f"{sum(successes):>4}/{len(successes):<3} {speed:>8,.0f}"
        )


if __name__ == "__main__":
    main()
