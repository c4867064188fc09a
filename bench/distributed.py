"""Distributed throughput as ratios measured in one run, interleaved (A, B, A, B ...).

- Collectors against the raw bound: C collector processes (one env process each,
  segments of 2,048 steps, as `make train`'s) writing into a real Reverb server
  whose queue this script drains, against C bare env processes stepping with random
  actions; each pair measured back to back, the median ratio reported.
- The learner's capacity: PPO updates (learner.Learner, default settings) on a ready
  batch, with nothing collecting beside it.

docs/distributed.md turns these into a scaling model. Usage:

    python -m bench.distributed --pairs 3 --collectors 1 2 4
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import threading
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from bench import common, throughput  # noqa: E402

FLAGS = ["--num_envs=1", "--collect_steps=2048"]
WARMUP_SECONDS = 25.0  # the collectors' start-up: TensorFlow import, env processes


@contextlib.contextmanager
def _agent():
    """(the config the collectors run with, a fresh PPO agent for it), built as the
    learner builds its own (trainer/builder.py); its one env process idles meanwhile."""
    from trainer import builder, config, reverb_tables

    cfg = config.Config(num_envs=1, collect_steps=2048)
    with builder.agent(cfg, 1, first_index=reverb_tables.EVAL_INDEX) as parts:
        yield cfg, parts.agent


def learner_capacity(iterations: int = 5) -> float:
    """Env steps/s the PPO learner trains on when a batch is always ready."""
    import numpy as np
    import tensorflow as tf
    from tf_agents.specs import tensor_spec

    from trainer import learner as learner_lib

    with _agent() as (cfg, agent):
        learner = learner_lib.create(cfg, agent)
        batch = [2, cfg.collect_steps]
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
        steps = 2 * cfg.collect_steps
        learner.learn(experience, steps)  # traces
        start = time.time()
        for _ in range(iterations):
            learner.learn(experience, steps)
        return iterations * steps / (time.time() - start)


class _Drain(threading.Thread):
    """Takes every segment off the server's queue, noting when each arrived."""

    def __init__(self, address: str):
        super().__init__(daemon=True)
        import reverb

        self._client, self.arrivals, self.stop = reverb.Client(address), [], threading.Event()

    def run(self):
        from trainer import reverb_tables

        while not self.stop.is_set():
            available = self._client.server_info()[reverb_tables.SEGMENTS].current_size
            if not available:
                time.sleep(0.01)
                continue
            for _ in self._client.sample(reverb_tables.SEGMENTS, available, emit_timesteps=False):
                self.arrivals.append(time.time())


def collector_speed(collectors: int, seconds: float) -> float:
    """Env steps/s that `collectors` collector processes deliver into Reverb."""
    import reverb

    from trainer import distributed, launch, reverb_tables

    with _agent() as (cfg, agent):
        port = launch.free_port()
        server = reverb_tables.make_server(cfg, port)
        address = f"127.0.0.1:{port}"
        client = reverb.Client(address)
        distributed.publish(client, 0, agent)
        drain = _Drain(address)
        drain.start()
        procs = [
            subprocess.Popen(
                [sys.executable, "-m", "trainer.task", "collect", "--run=bench"]
                + [f"--reverb_address={address}", f"--task={task_}", *FLAGS],
                cwd=common.ROOT,
                stderr=subprocess.DEVNULL,
            )
            for task_ in range(collectors)
        ]
        try:
            time.sleep(WARMUP_SECONDS)
            start = time.time()
            time.sleep(seconds)
            end = time.time()
            distributed.publish(client, 1, agent, done=True)
            for proc in procs:
                proc.wait(timeout=120)
        finally:
            drain.stop.set()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
            server.stop()
        arrived = [t for t in drain.arrivals if start <= t <= end]
        return len(arrived) * reverb_tables.segment_length(cfg) / (end - start)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--collectors", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--pairs", type=int, default=3, help="A, B pairs per collector count")
    parser.add_argument("--seconds", type=float, default=30.0, help="length of one measurement")
    parser.add_argument("--env_id", default="KukaGrasp-v0")
    args = parser.parse_args()
    rows = []
    for count in args.collectors:
        ratios = throughput.pairs(
            lambda count=count: throughput.raw_bound(args.env_id, count, args.seconds),
            lambda count=count: collector_speed(count, args.seconds),
            args.pairs,
            (f"raw bound ({count} processes)", f"{count} collector(s)"),
        )
        rows.append((count, statistics.median(ratios), min(ratios), max(ratios)))
    print("Learner capacity: PPO updates on a ready batch ...", flush=True)
    capacity = learner_capacity()
    print(f"\n{os.cpu_count()} cores; one env process per collector; segments of 2,048 steps")
    print("| collectors | collected / raw bound (median of pairs, range) |")
    print("|---|---|")
    for count, median, low, high in rows:
        print(f"| {count} | {median:.2f} ({low:.2f}-{high:.2f}) |")
    print(f"\nlearner capacity (batch always ready): {capacity:,.0f} env steps/s")


if __name__ == "__main__":
    main()
