"""Distributed training: the local loop with Reverb in place of the pipe.

Collectors run the env processes and numpy actor of `make train` (actors.ActorPool)
and write each env's whole segment, with the behaviour policy's distribution and
the policy version it was collected with, as one Reverb item. The learner takes
`collect_steps` worth of segments per iteration, drops those more than
`--max_policy_lag` versions old, and runs the same update as local training
(learner.create); it then publishes the actor's parameters as a new version, which
collectors fetch at most once per segment. The learner alone writes the run
directory: the collectors' episodes travel inside their segments. For an algorithm
that replays (SAC), collectors write transitions into a replay table instead and
queue a report per segment; the learner samples the table (replay_table.py).

Every wait here polls in Python, so SIGTERM and Ctrl-C are handled at once, and
every wait has an end: a learner that gets no data for `--data_timeout` seconds
fails in one line. The one exception is a SAC learner's sampling, inside TensorFlow:
a restarted server's empty table holds it until the collectors write again.
A restarted Reverb server loses only what it held: collectors and the learner
reconnect, collectors go on with the parameters they have, and a learner thread puts
its last parameters back within a second.
"""

from __future__ import annotations

import math
import sys
import threading
import time

import numpy as np
import reverb
import tensorflow as tf

from trainer import actors, agents, builder, env_process, record, replay_table, wire
from trainer import learner as learner_lib
from trainer.config import Config
from trainer.reverb_tables import (
    EVAL_INDEX,
    PARAMS,
    QUEUE_ITERATIONS,
    SEGMENTS,
    replays,
    segment_length,
    segments_per_iteration,
    wait_for_server,
)

# Collector TASK's env processes (envs.process_seed) from COLLECTOR_INDEX + TASK *
# num_envs on, after the learner's evaluation env (EVAL_INDEX).
COLLECTOR_INDEX = 1_000
POLL_SECONDS = 0.05


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _size(client: reverb.Client, table: str) -> int:
    return client.server_info(timeout=5)[table].current_size


def _reverb_errors():
    return (RuntimeError, reverb.errors.ReverbError, tf.errors.OpError)


def _latest_params(client: reverb.Client):
    """(version, done, params blob) last published, or None while there is none."""
    if _size(client, PARAMS) == 0:
        return None
    sample = next(client.sample(PARAMS, 1, emit_timesteps=False))
    version, done, blob = sample.data
    return int(version), bool(done), blob


def publish(client: reverb.Client, version: int, agent, done: bool = False) -> list:
    """Inserts the actor's parameters as `version`; returns the item inserted."""
    item = [np.int64(version), np.int64(done), wire.pack_params(agents.actor_params(agent))]
    client.insert(item, priorities={PARAMS: 1.0})
    return item


def _send(client: reverb.Client, writer, results, version: int) -> None:
    """Each env's segment and the episodes that ended in it, as segment items; or, with a
    TransitionWriter, as transitions in the replay table and then a report each."""
    if writer is not None:
        for index, (segment, _) in enumerate(results):
            writer.write(index, segment)
        writer.flush()  # the learner counts a report's steps: they are in the table first
    for segment, finished in results:
        item = {"version": np.int64(version), "episodes": wire.pack_episodes(finished)}
        if writer is None:
            item.update(segment)
        else:
            item["steps"] = np.int64(len(segment["reward"]))
        client.insert(item, priorities={SEGMENTS: 1.0})


def collect(cfg: Config, address: str, task: int, log=_log) -> int:
    """Collects into the Reverb server at `address` until the learner finishes.

    Returns the env steps collected. Waits for the server and for the learner's
    first parameters, so collectors may start before either; reconnects when the
    server restarts.
    """
    writer_for = replay_table.TransitionWriter if replays(cfg) else lambda client, envs: None
    length, room = segment_length(cfg), QUEUE_ITERATIONS * segments_per_iteration(cfg)
    first = COLLECTOR_INDEX + task * cfg.num_envs
    collected, started, version, params = 0, time.time(), -1, None
    with actors.ActorPool(cfg.env_id, cfg.num_envs, cfg.seed, first_index=first) as pool:
        log(f"Collector {task}: {pool.size} env processes; waiting for Reverb at {address} ...")
        client = wait_for_server(address)
        writer = writer_for(client, pool.size)
        while True:
            try:
                latest = _latest_params(client)
                if latest is not None and latest[1]:
                    break  # the learner is done
                if latest is not None and latest[0] != version:
                    version, params = latest[0], wire.unpack_params(latest[2])
                # A restarted server has no parameters for up to a second (the learner's
                # keeper puts them back): collect on with the last ones meanwhile.
                if params is None or _size(client, SEGMENTS) >= room:
                    time.sleep(POLL_SECONDS)  # no policy yet, or the learner is behind
                    continue
                results = pool.collect(params, length)
                _send(client, writer, results, version)
                collected += length * len(results)
            except _reverb_errors() as e:
                log(f"Collector {task}: lost the Reverb server ({type(e).__name__}); reconnecting")
                client = wait_for_server(address)
                writer = writer_for(client, pool.size)
    rate = collected / max(time.time() - started, 1e-9)
    log(f"Collector {task}: learner finished; collected {collected:,} env steps ({rate:,.0f}/s)")
    return collected


class _Queue:
    """The learner's side of Reverb: takes fresh segments, publishes parameters."""

    def __init__(self, cfg: Config, address: str, agent, data_timeout: float, log):
        self._cfg, self._address, self._agent, self._log = cfg, address, agent, log
        self._timeout = data_timeout
        self.client = wait_for_server(address)
        self.dropped_steps = 0
        # Off-policy data is never too old: a replaying learner drops nothing.
        self._max_lag = math.inf if replays(cfg) else cfg.max_policy_lag
        self._last: list | None = None
        # The keeper's check and insert, and a publish, one at a time: PARAMS holds one
        # item, and an old one put back just after a newer one (the final `done` one
        # included) would replace it.
        self._lock = threading.Lock()
        # A restarted server has no parameters, and a collector that asks for them just
        # then waits inside Reverb until some arrive; a SAC learner sampling the emptied
        # table waits for that collector's transitions. So the last ones published are
        # put back from here whenever the table is empty, whatever the learner is doing.
        threading.Thread(target=self._keep_params, daemon=True).start()

    def publish(self, version: int, done: bool = False) -> None:
        with self._lock:
            self._last = publish(self.client, version, self._agent, done)

    def _keep_params(self) -> None:
        client = reverb.Client(self._address)
        while True:
            time.sleep(1.0)
            try:
                with self._lock:
                    if self._last is not None and _size(client, PARAMS) == 0:
                        client.insert(self._last, priorities={PARAMS: 1.0})
            except _reverb_errors():
                pass  # the server is down: the next round tries again

    def take(self, count: int, version: int) -> tuple[list[dict], list[int]]:
        """`count` items (segments, or reports) at most `max_policy_lag` versions old (a
        replaying learner's: any), and each one's lag."""
        got, lags, since = [], [], time.time()
        while len(got) < count:
            try:
                available = _size(self.client, SEGMENTS)
                if not available:
                    if time.time() - since > self._timeout:
                        raise TimeoutError(
                            f"no experience from any collector for {self._timeout:.0f} s"
                        )
                    time.sleep(POLL_SECONDS)
                    continue
                samples = self.client.sample(
                    SEGMENTS, min(available, count - len(got)), emit_timesteps=False,
                    unpack_as_table_signature=True,
                )  # fmt: skip
                for sample in samples:
                    # An item inserted whole comes back as a trajectory of one step.
                    data = tf.nest.map_structure(lambda x: x[0], sample.data)
                    lag = version - int(data["version"])
                    if lag > self._max_lag:
                        self.dropped_steps += segment_length(self._cfg)
                        continue
                    got.append(data)
                    lags.append(lag)
                since = time.time()
            except _reverb_errors() as e:
                self._log(f"Learner: lost the Reverb server ({type(e).__name__}); reconnecting")
                self.client = wait_for_server(self._address)
        return got, lags


def _experience(cfg: Config, run, items: list[dict]):
    """(the [envs, T] segments to learn from, or None for a replaying learner's reports,
    and the env steps they bring)."""
    if replays(cfg):
        return None, sum(int(item["steps"]) for item in items)
    experience = learner_lib.to_trajectory(items, run.parts.agent.collect_data_spec)
    return experience, len(items) * segment_length(cfg)


def learn(
    cfg: Config, run_dir: str, address: str, data_timeout: float, log=_log, syncer=None
) -> dict:
    """Trains from the segments in Reverb (or the replay table, for a replaying agent) to
    `cfg.total_steps`; returns the final eval."""
    version = tf.Variable(0, dtype=tf.int64, name="policy_version")
    replay = None
    if replays(cfg):
        wait_for_server(address)
        replay = replay_table.ReverbReplay(address, cfg.algo.batch_size, data_timeout)
    with builder.run(
        cfg,
        run_dir,
        1,
        first_index=EVAL_INDEX,
        tracked={"policy_version": version},
        log=log,
        syncer=syncer,
        replay=replay,
    ) as run:
        queue = _Queue(cfg, address, run.parts.agent, data_timeout, log)
        queue.publish(int(version.numpy()))
        count = segments_per_iteration(cfg)
        log(f"Learner: {count} segments of {segment_length(cfg):,} steps per iteration")
        recent: list[env_process.Episode] = []
        while run.recorder.steps < cfg.total_steps:
            t0 = time.time()
            items, lags = queue.take(count, int(version.numpy()))
            for item in items:
                recent += wire.unpack_episodes(item.pop("episodes"))
                item.pop("version")
            recent = recent[-record.METRIC_WINDOW :]
            experience, new_steps = _experience(cfg, run, items)
            try:
                loss_info = run.learner.learn(experience, new_steps)
            except replay_table.LostServer as e:
                log(f"Learner: lost the Reverb server ({e}); reconnecting")
                wait_for_server(address)
                loss_info = None
            version.assign_add(1)
            queue.publish(int(version.numpy()))
            extra = {
                "Metrics/PolicyLag": float(np.mean(lags)),
                "Metrics/DroppedEnvSteps": float(queue.dropped_steps),
            }
            run.recorder.record(new_steps, time.time() - t0, loss_info, recent, extra)
    queue.publish(int(version.numpy()), done=True)  # collectors stop when they see it
    return run.result
