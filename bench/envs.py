"""Random-policy baselines of our KukaGrasp-v0 and pybullet's KukaBulletEnv-v0.

For each env, in its own process (the Kuka env uses pybullet's global client):
mean return, mean episode length, grasp success and env steps/s of uniform random
actions over EPISODES episodes. With --resets, KukaGrasp-v0's resets that restore
its saved scene against the same env loading the scene anew at every reset (as it did
until 2026-12-01), in interleaved pairs of processes, and the ratio of their speeds.
With --policy, KukaGrasp-v0 driven by an exported greedy policy against random actions,
in interleaved pairs: what a run's env steps cost once it grasps (a run slows as it
learns). Usage:

    python -m bench.envs --episodes 100
    python -m bench.envs --episodes 50 --resets 3
    python -m bench.envs --episodes 10 --policy runs/my-run/policy --pairs 3
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time

ENV_IDS = ("KukaGrasp-v0", "KukaBulletEnv-v0")
LOADED = "KukaGrasp-v0, loaded anew"


def loaded_kuka_grasp():
    """KukaGrasp-v0 loading its scene anew at every reset, as it did until 2026-12-01
    (pybullet_envs' KukaGymEnv.reset, then the arm's uncapped speed)."""
    import gym
    from pybullet_envs.bullet.kukaGymEnv import KukaGymEnv

    from trainer import envs

    class Loaded(envs.KukaGraspEnv):
        def reset(self):
            observation = KukaGymEnv.reset(self)
            self._kuka.maxVelocity = -1.0
            return observation

    limit = gym.spec(envs.DEFAULT_ENV_ID).max_episode_steps
    return gym.wrappers.TimeLimit(Loaded(), max_episode_steps=limit)


def _make(env_id: str):
    import gym

    return loaded_kuka_grasp() if env_id == LOADED else gym.make(env_id)


def _actor(env, policy: str):
    """Random actions, or the greedy actions of the policy exported in `policy`."""
    if not policy:
        return lambda observation: env.action_space.sample()
    import numpy as np
    from tf_agents.policies import py_tf_eager_policy
    from tf_agents.trajectories import time_step as ts

    loaded = py_tf_eager_policy.SavedModelPyTFEagerPolicy(policy, load_specs_from_pbtxt=True)
    return lambda observation: loaded.action(
        ts.transition(np.asarray(observation, np.float32), np.float32(0))
    ).action


def _baseline(env_id: str, episodes: int, seed: int, policy: str, queue) -> None:
    from trainer import envs

    envs.silence_env_prints()
    envs.seed_process(seed)
    env = _make(env_id)
    env.seed(seed)
    env.action_space.seed(seed)
    act = _actor(env, policy)
    returns, lengths, successes, steps, last_seconds = [], [], [], 0, 0.0
    start = time.time()
    for _ in range(episodes):
        observation = env.reset()
        done, total, length, reward = False, 0.0, 0, 0.0
        while not done:
            action = act(observation)
            stepped = time.perf_counter()
            observation, reward, done, _ = env.step(action)
            total += reward
            length += 1
        last_seconds += time.perf_counter() - stepped  # the scripted grasp
        returns.append(total)
        lengths.append(length)
        successes.append(envs.is_success(env_id, reward))
        steps += length
    speed = steps / (time.time() - start)
    queue.put((returns, lengths, successes, speed, last_seconds / episodes))


def _run(ctx, env_id: str, episodes: int, seed: int, policy: str = ""):
    """(returns, lengths, successes, steps/s, mean seconds of an episode's last step) of
    `env_id` in a process of its own, with random actions or `policy`'s."""
    queue = ctx.Queue()
    proc = ctx.Process(target=_baseline, args=(env_id, episodes, seed, policy, queue))
    proc.start()
    result = queue.get()
    proc.join()
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--episodes", type=int, default=100, help="episodes per env")
    parser.add_argument("--seed", type=int, default=0, help="seed of block placement and actions")
    parser.add_argument(
        "--resets",
        type=int,
        default=0,
        metavar="PAIRS",
        help="instead, PAIRS interleaved pairs: KukaGrasp-v0 as it is, then loading its scene "
        "anew at every reset; prints each speed and the ratio",
    )
    parser.add_argument(
        "--policy",
        default="",
        metavar="DIR",
        help="instead, --pairs interleaved pairs on KukaGrasp-v0: the greedy policy exported in "
        "DIR (a run's policy/), then random actions; prints each one's speed, success and "
        "last step's seconds",
    )
    parser.add_argument("--pairs", type=int, default=3, help="pairs with --policy")
    args = parser.parse_args()
    if args.policy and args.resets:
        parser.error("--policy and --resets are two measurements: one at a time")
    ctx = multiprocessing.get_context("spawn")
    if args.policy:
        _policy_pairs(ctx, args)
        return
    print(f"Random actions, {args.episodes} episodes per env, seed {args.seed}")
    if args.resets:
        _pairs(ctx, args)
        return
    print(f"{'env':<18} {'mean return':>12} {'mean length':>12} {'success':>8} {'steps/s':>8}")
    for env_id in ENV_IDS:
        returns, lengths, successes, speed, _ = _run(ctx, env_id, args.episodes, args.seed)
        mean = lambda xs: sum(xs) / len(xs)
        print(
            f"{env_id:<18} {mean(returns):>12,.0f} {mean(lengths):>12.0f} "
            f"{sum(successes):>4}/{len(successes):<3} {speed:>8,.0f}"
        )


def _pairs(ctx, args) -> None:
    ratios = []
    for pair in range(args.resets):
        *_, restored = _run(ctx, ENV_IDS[0], args.episodes, args.seed)
        *_, loaded = _run(ctx, LOADED, args.episodes, args.seed)
        ratios.append(restored / loaded)
        print(
            f"pair {pair + 1}: restored {restored:,.0f} steps/s, loaded anew {loaded:,.0f}: "
            f"{ratios[-1]:.2f}",
            flush=True,
        )
    print(
        f"restored / loaded anew: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


def _policy_pairs(ctx, args) -> None:
    print(f"{args.episodes} episodes per measurement, seed {args.seed}, policy {args.policy}")
    ratios = []
    for pair in range(args.pairs):
        measured = {}
        for name, policy in (("policy", args.policy), ("random", "")):
            _, _, successes, speed, last = _run(ctx, ENV_IDS[0], args.episodes, args.seed, policy)
            measured[name] = last
            print(
                f"pair {pair + 1}, {name}: {speed:,.0f} steps/s with its actions' time, "
                f"{sum(successes)}/"
                f"{len(successes)} lifted, last step {last * 1000:.0f} ms",
                flush=True,
            )
        ratios.append(measured["policy"] / measured["random"])
    print(
        f"last step, policy / random: median {statistics.median(ratios):.2f} "
        f"({min(ratios):.2f}-{max(ratios):.2f})"
    )


if __name__ == "__main__":
    main()
