"""End-to-end training throughput against the raw bound, measured in interleaved pairs.

The raw bound is the env stepped with random actions in NUM_ENVS processes and
nothing else; training throughput is env steps per second of the training loop
(collection and learning) after its first iteration, read from the run's
`Metrics/EnvStepsPerSecond`. The two are measured in turn, PAIRS times (A, B,
A, B, ...), and the median of the per-pair ratios is reported with its range, so
a neighbour that slows the machine for a while weighs on both sides alike.
`--deterministic_cost` pairs training without and with deterministic ops instead;
`--threads_cost` pairs training with TensorFlow's own intra-op threads (one per core)
and with one, each training in a fresh process (the count is fixed when TensorFlow
starts).
Usage:

    python -m bench.throughput --num_envs 2 --pairs 3 --seconds 20 --train_steps 40000
    python -m bench.throughput --deterministic_cost
    python -m bench.throughput --threads_cost
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from queue import Empty

from trainer.rundir import RunDir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # no CUDA probing notes between the pairs


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


def in_processes(target, args_list) -> list:
    """Runs `target(*args, queue)` in a spawned process per `args` at once; returns what
    each put on its queue (a process of its own: pybullet's client is global, and its
    envs print to stdout)."""
    ctx = multiprocessing.get_context("spawn")
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(*args, queue)) for args in args_list]
    for proc in procs:
        proc.start()
    results = []
    while len(results) < len(procs):
        try:
            results.append(queue.get(timeout=1))
        except Empty:  # a process that died puts nothing: stop rather than wait forever
            failed = [proc.exitcode for proc in procs if proc.exitcode not in (None, 0)]
            if failed:
                for proc in procs:
                    proc.terminate()
                raise SystemExit(
                    f"a measuring process exited {failed[0]} (its error is above)"
                ) from None
    for proc in procs:
        proc.join()
    return results


def raw_bound(env_id: str, num_envs: int, seconds: float) -> float:
    """Env steps per second of `num_envs` processes stepping with random actions."""
    args_list = [(env_id, i, seconds) for i in range(num_envs)]
    return sum(in_processes(_random_steps, args_list)) / seconds


def training_speed(
    env_id: str,
    num_envs: int,
    steps: int,
    agent: str,
    deterministic: bool = True,
    from_step: int = 0,
    **changes,
) -> float:
    """Env steps per second of a short training run in its steady state, counted from
    the third iteration after env step `from_step`; `changes` are more config fields."""
    from trainer import config, evaluate, train

    with tempfile.TemporaryDirectory() as run_dir:
        cfg = config.for_agent(
            agent,
            env_id=env_id,
            num_envs=num_envs,
            total_steps=steps,
            eval_interval=0,
            eval_episodes=num_envs,
            checkpoint_interval=10 * steps,
            deterministic=deterministic,
            **changes,
        )
        train.train(cfg, run_dir)
        events = evaluate.read_scalar_events(RunDir(run_dir).train_events)
        marks = [
            (step, wall)
            for step, _, wall in events["Metrics/EnvStepsPerSecond"]
            if step > from_step
        ]
        idle = {step: share for step, share, _ in events.get("Metrics/EnvIdleShare", [])}
    if len(marks) < 5:
        raise SystemExit("train_steps too small: need at least five iterations")
    # Steps over wall time from the end of the third iteration to the end of the last.
    # Earlier ones are start-up: while the first iteration learns (and TensorFlow traces)
    # the env processes collect the next one, which then looks nearly free, so neither a
    # mean of per-iteration rates nor a clock started at the first iteration is fair.
    # The last iteration is left out when it is shorter: its new length costs a trace.
    if len(marks) > 5 and marks[-1][0] - marks[-2][0] != marks[-2][0] - marks[-3][0]:
        marks = marks[:-1]
    (first_step, first_wall), (last_step, last_wall) = marks[2], marks[-1]
    shares = [idle[step] for step, _ in marks[3:] if step in idle]
    if shares:  # where the rest of the bound went: env processes waiting for work
        print(f"  env processes idle {statistics.mean(shares):.0%} of the steady state", flush=True)
    return (last_step - first_step) / (last_wall - first_wall)


def _training_with_threads(threads: int, args: tuple, changes: dict, queue) -> None:
    """In a spawned process: `training_speed(*args, **changes)` with `threads` intra-op
    threads (0: TensorFlow's own count), set before TensorFlow runs anything."""
    import tensorflow as tf

    speed = training_speed(*args, intra_op_threads=threads, **changes)
    queue.put((speed, tf.config.threading.get_intra_op_parallelism_threads()))


def training_speed_with_threads(threads: int, *args, **changes) -> tuple[float, int]:
    """`training_speed(*args, **changes)` in a fresh process with `threads` intra-op
    threads; returns the speed and the count TensorFlow reported after training."""
    (result,) = in_processes(_training_with_threads, [(threads, args, changes)])
    return result


def pairs(measure_a, measure_b, count: int, names: tuple[str, str]):
    """Runs A, B, A, B ... and prints each pair; returns the ratios B/A."""
    ratios = []
    for index in range(count):
        a, b = measure_a(), measure_b()
        ratios.append(b / a)
        print(
            f"pair {index + 1}/{count}: {names[0]} {a:,.0f}, {names[1]} {b:,.0f} env steps/s, "
            f"ratio {b / a:.2f}",
            flush=True,
        )
    return ratios


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env_id", default="KukaGrasp-v0", help="gym id of the env")
    parser.add_argument("--agent", default="ppo", help="agent to train (ppo or sac)")
    parser.add_argument("--num_envs", type=int, default=2, help="env processes")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs (A, B) to measure")
    parser.add_argument("--seconds", type=float, default=20, help="length of one raw measurement")
    parser.add_argument("--train_steps", type=int, default=40_000, help="env steps per training")
    other_pair = parser.add_mutually_exclusive_group()
    other_pair.add_argument(
        "--deterministic_cost",
        action="store_true",
        help="pair training without (A) and with (B) deterministic ops instead",
    )
    other_pair.add_argument(
        "--threads_cost",
        action="store_true",
        help="pair training with TensorFlow's intra-op threads (A) and with one (B) instead",
    )
    args = parser.parse_args()
    train = lambda deterministic: lambda: training_speed(  # noqa: E731
        args.env_id, args.num_envs, args.train_steps, args.agent, deterministic
    )
    if args.threads_cost:
        names = ("default threads", "one intra-op thread")
        run = (args.env_id, args.num_envs, args.train_steps, args.agent)
        ratios = pairs(
            lambda: training_speed_with_threads(0, *run)[0],
            lambda: training_speed_with_threads(1, *run)[0],
            args.pairs,
            names,
        )
        goal = "one thread is worth a default when this is > 1 on every pair"
    elif args.deterministic_cost:
        names = ("nondeterministic", "deterministic")
        ratios = pairs(train(False), train(True), args.pairs, names)
        goal = "deterministic ops are the default when this is >= 0.90"
    else:
        names = ("raw bound", f"training ({args.agent})")
        raw = lambda: raw_bound(args.env_id, args.num_envs, args.seconds)  # noqa: E731
        ratios = pairs(raw, train(True), args.pairs, names)
        goal = "goal >= 0.85"
    ratios.sort()
    print(
        f"env {args.env_id}, {args.num_envs} env processes, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    print(
        f"{names[1]} / {names[0]}: median {statistics.median(ratios):.2f} over {len(ratios)} "
        f"pairs (range {ratios[0]:.2f}-{ratios[-1]:.2f}; {goal})"
    )


if __name__ == "__main__":
    main()
