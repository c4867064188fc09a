"""The distributed run's Reverb server: its tables, the shape of what fills them, and
the `reverb` role; and the wait for a server that every other role starts with.

Three tables: the queue (FIFO, each item taken once: PPO's segments, or a replaying
algorithm's reports), the newest parameters, and for a replaying algorithm (SAC) the
replay table of its transitions (replay_table.py). distributed.py runs the collectors
and the learner around them.
"""

from __future__ import annotations

import math
import sys
import time

import reverb
import tensorflow as tf

from trainer import actors, replay_table, wire
from trainer import learner as learner_lib
from trainer.config import Config

SEGMENTS = "segments"
PARAMS = "params"
# The env process index (envs.process_seed) of the learner's evaluation env; collectors'
# come after it (distributed.COLLECTOR_INDEX).
EVAL_INDEX = 999
# Learner iterations of segments the queue holds before collectors wait for room.
QUEUE_ITERATIONS = 1
# How long a role waits for the Reverb server to come up (or back).
SERVER_WAIT_SECONDS = 300


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def segment_length(cfg: Config) -> int:
    """Steps per segment: the local loop's per-env share of one iteration."""
    return math.ceil(cfg.collect_steps / cfg.num_envs)


def segments_per_iteration(cfg: Config) -> int:
    return max(1, cfg.collect_steps // segment_length(cfg))


def specs(env_id: str):
    """(time step spec, action spec) of `env_id`, as array specs."""
    env = actors.ActorPool(env_id, 1, seed=0, first_index=EVAL_INDEX)
    try:
        return env.time_step_spec, env.action_spec
    finally:
        env.close()


def wait_for_server(address: str, timeout: float = SERVER_WAIT_SECONDS) -> reverb.Client:
    """A client of the Reverb server at `address` once it answers; TimeoutError after `timeout`."""
    deadline = time.time() + timeout
    client = reverb.Client(address)
    while True:
        try:
            client.server_info(timeout=2)
            return client
        except (RuntimeError, reverb.errors.ReverbError, tf.errors.DeadlineExceededError) as e:
            if time.time() > deadline:
                raise TimeoutError(f"no Reverb server at {address} after {timeout:.0f} s") from e
            time.sleep(0.5)


def replays(cfg: Config) -> bool:
    """Whether `cfg.agent` learns from a replay table of transitions instead of segments."""
    return learner_lib.algorithm(cfg.agent).REPLAYS


def make_server(cfg: Config, port: int) -> reverb.Server:
    """A Reverb server on `port` with the run's tables: the queue (segments, or reports of
    the transitions written), the parameters, and for a replaying agent the replay table."""
    time_step_spec, action_spec = specs(cfg.env_id)
    room = 4 * QUEUE_ITERATIONS * segments_per_iteration(cfg)  # collectors may overshoot
    if replays(cfg):
        queued = wire.report_signature()
        extra = [replay_table.table(cfg, time_step_spec, action_spec)]
    else:
        queued, extra = wire.signature(segment_length(cfg), time_step_spec, action_spec), []
    tables = [
        reverb.Table(
            name=SEGMENTS,
            sampler=reverb.selectors.Fifo(),
            remover=reverb.selectors.Fifo(),
            max_size=room,
            max_times_sampled=1,
            rate_limiter=reverb.rate_limiters.MinSize(1),
            signature=queued,
        ),
        reverb.Table(
            name=PARAMS,
            sampler=reverb.selectors.Fifo(),
            remover=reverb.selectors.Fifo(),
            max_size=1,
            max_times_sampled=0,
            rate_limiter=reverb.rate_limiters.MinSize(1),
        ),
        *extra,
    ]
    return reverb.Server(tables=tables, port=port)


def serve(cfg: Config, port: int, log=_log) -> None:
    """Runs the Reverb server on `port` until SIGTERM or Ctrl-C."""
    server = make_server(cfg, port)
    log(f"Reverb server on port {port}")
    try:
        while True:  # sleeping in Python lets SIGTERM's handler run
            time.sleep(1)
    finally:
        server.stop()
