"""Our SAC loop against tf-agents' own, in interleaved pairs, at one gradient step per env step.

A, the plain loop of tf-agents' SAC example (agents/sac/examples/v2/train_eval.py at
v0.19.0): one env in a TFPyEnvironment, a DynamicStepDriver that adds each step to a
TFUniformReplayBuffer, a tf.data pipeline sampling pairs of steps, and `agent.train`
after every env step, both inside `common.function`. B, `make train AGENT=sac`'s loop
(train.py) with the same networks, batch size and ratio. Both warm up on
`--learning_starts` steps first; each is timed over its steady state after that.
Env steps/s equal gradient steps/s in both, by the one-to-one ratio. `--learner_alone`
times instead our learner's gradient steps with no env process beside it: the ceiling
of B, whatever the loop around it does. Usage:

    python -m bench.sac_speed --pairs 3 --steps 3000
    python -m bench.sac_speed --learner_alone --seconds 25 [--intra_op_threads 0]
    python -m bench.sac_speed --pairs 3 --steps 3000 --plain_intra_op_threads 1
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def plain_tf_agents(env_id: str, steps: int, learning_starts: int, threads: int = 0) -> float:
    """Env steps/s of tf-agents' own SAC loop over `steps` after the warm-up, in a process
    of its own with `threads` intra-op threads (0: TensorFlow's own, as its users run it)."""
    from bench import throughput

    args = (env_id, steps, learning_starts, threads)
    (rate,) = throughput.in_processes(_plain_loop, [args])
    return rate


def _plain_loop(env_id: str, steps: int, learning_starts: int, threads: int, queue) -> None:
    import tensorflow as tf
    from tf_agents.drivers import dynamic_step_driver
    from tf_agents.environments import suite_gym, tf_py_environment
    from tf_agents.replay_buffers import tf_uniform_replay_buffer
    from tf_agents.utils import common

    from trainer import agents, config, envs

    agents.start_tensorflow(threads)
    envs.register()
    envs.silence_env_prints()
    cfg = config.for_agent("sac", env_id=env_id, num_envs=1)
    tf_env = tf_py_environment.TFPyEnvironment(suite_gym.load(env_id))
    agent = agents.create(
        cfg, tf_env.time_step_spec(), tf_env.action_spec(), tf.Variable(0, dtype=tf.int64)
    )
    buffer = tf_uniform_replay_buffer.TFUniformReplayBuffer(
        agent.collect_data_spec, batch_size=1, max_length=cfg.algo.replay_capacity
    )
    driver = dynamic_step_driver.DynamicStepDriver(
        tf_env, agent.collect_policy, observers=[buffer.add_batch], num_steps=1
    )
    collect, train = common.function(driver.run), common.function(agent.train)
    dataset = buffer.as_dataset(
        num_parallel_calls=3, sample_batch_size=cfg.algo.batch_size, num_steps=2
    ).prefetch(3)
    time_step = None
    for _ in range(learning_starts):
        time_step, _ = collect(time_step=time_step)
    iterator = iter(dataset)
    start = None
    for index in range(steps + 1):
        if index == 1:  # the first step traces train
            start = time.time()
        time_step, _ = collect(time_step=time_step)
        train(next(iterator)[0])
    queue.put(steps / (time.time() - start))


def ours(env_id: str, steps: int, learning_starts: int) -> float:
    """Env steps/s of train.py's SAC loop in its steady state after the warm-up, in a
    process of its own with SAC's intra-op threads, as `trainer.task` sets them."""
    from bench import throughput
    from trainer import config

    threads = config.for_agent("sac").intra_op_threads
    speed, _ = throughput.training_speed_with_threads(
        threads,
        env_id,
        2,
        learning_starts + steps,
        "sac",
        from_step=learning_starts,
        learning_starts=learning_starts,
    )
    return speed


def learner_alone(seconds: float, threads: int | None, queue) -> None:
    """Gradient steps/s of our SAC learner fed random [2, 32] segments, 64 gradient steps
    per `learn` after 512 steps in its buffer (sampling costs the same from any size)
    and 3 more calls to trace, with `threads` intra-op threads (None: SAC's default), in
    a process of its own; puts the rate on `queue`."""
    import numpy as np
    import tensorflow as tf
    from tf_agents.specs import array_spec, tensor_spec
    from tf_agents.trajectories import time_step as ts

    from trainer import agents, config, learner

    observation = array_spec.BoundedArraySpec((9,), np.float32, -100, 100, name="observation")
    action = array_spec.BoundedArraySpec((3,), np.float32, -1, 1, name="action")
    cfg = config.for_agent("sac", learning_starts=512)
    agents.start_tensorflow(cfg.intra_op_threads if threads is None else threads)
    agent = agents.create(
        cfg,
        tensor_spec.from_spec(ts.time_step_spec(observation)),
        tensor_spec.from_spec(action),
        tf.Variable(0, dtype=tf.int64),
    )
    sac = learner.create(cfg, agent)
    shape, mid = (2, 32), tf.ones((2, 32), tf.int32)
    segment = lambda: tensor_spec.sample_spec_nest(  # noqa: E731
        agent.collect_data_spec, outer_dims=shape
    ).replace(
        step_type=mid,
        next_step_type=mid,
        discount=tf.ones(shape),
        observation=tf.random.normal((*shape, 9)),
        action=tf.random.uniform((*shape, 3), -1, 1),
        reward=tf.random.normal(shape),
    )
    for _ in range(512 // 64 + 3):
        sac.learn(segment(), 64)
    steps, start = 0, time.time()
    while time.time() - start < seconds:
        sac.learn(segment(), 64)
        steps += 64
    queue.put(steps / (time.time() - start))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--env_id", default="KukaGrasp-v0", help="gym id of the env")
    parser.add_argument("--pairs", type=int, default=3, help="interleaved pairs (A, B)")
    parser.add_argument("--steps", type=int, default=3000, help="timed env steps per loop")
    parser.add_argument(
        "--learning_starts", type=int, default=1000, help="env steps before the first update"
    )
    parser.add_argument(
        "--learner_alone", action="store_true", help="time our learner alone instead"
    )
    parser.add_argument(
        "--seconds", type=float, default=25, help="with --learner_alone: seconds per measurement"
    )
    parser.add_argument(
        "--intra_op_threads",
        type=int,
        default=None,
        help="with --learner_alone: TensorFlow's intra-op threads (0: its own; default SAC's)",
    )
    parser.add_argument(
        "--plain_intra_op_threads",
        type=int,
        default=0,
        help="TensorFlow's intra-op threads in tf-agents' loop (0: its own, as its users run it)",
    )
    args = parser.parse_args()
    from bench import throughput

    if args.learner_alone:
        alone = (args.seconds, args.intra_op_threads)
        rates = [throughput.in_processes(learner_alone, [alone])[0] for _ in range(3)]
        print(f"our SAC learner alone: {', '.join(f'{r:.0f}' for r in rates)} gradient steps/s")
        return

    ratios = throughput.pairs(
        lambda: plain_tf_agents(
            args.env_id, args.steps, args.learning_starts, args.plain_intra_op_threads
        ),
        lambda: ours(args.env_id, args.steps, args.learning_starts),
        args.pairs,
        ("tf-agents' SAC loop", "ours"),
    )
    ratios.sort()
    print(f"env {args.env_id}, {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}")
    print(
        f"ours / tf-agents': median {statistics.median(ratios):.2f} over {len(ratios)} pairs "
        f"(range {ratios[0]:.2f}-{ratios[-1]:.2f}; goal >= 2); gradient steps/s = env steps/s"
    )


if __name__ == "__main__":
    main()
