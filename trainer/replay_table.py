"""A replay table in Reverb: the distributed loop of an algorithm that replays (sac.py).

The design of tf-agents' distributed SAC example (tf_agents/examples/sac/distributed,
v0.19.0): collectors write each env's steps with a Reverb TrajectoryWriter and make an
item of every two consecutive steps, a transition, as its ReverbAddTrajectoryObserver
with sequence_length 2 and stride 1 does; the table samples them uniformly, any number
of times, and drops the oldest past `--replay_capacity`; the learner samples batches
through a reverb.TrajectoryDataset. Unlike the example, no item is made of an episode's
boundary (a LAST step and the next episode's FIRST), which the learner would weigh 0,
and the pace is kept by the collectors' reports (distributed.py): a collector waits
while the learner has a full iteration of them to train on, so gradient steps per env
step stay at `--train_ratio`, the work the example's SampleToInsertRatio limiter does.
"""

from __future__ import annotations

import reverb
from tf_agents.trajectories import trajectory

from trainer import env_process, wire
from trainer.config import Config

REPLAY = "replay"
# Items a writer sends between flushes, and how long a flush may wait before the server
# counts as lost: its table never holds a write back (MinSize), and a writer left to
# send a whole segment to a killed server hung in create_item.
FLUSH_ITEMS = 256
FLUSH_TIMEOUT_MS = 20_000


def table(cfg: Config, time_step_spec, action_spec) -> reverb.Table:
    return reverb.Table(
        name=REPLAY,
        sampler=reverb.selectors.Uniform(),
        remover=reverb.selectors.Fifo(),
        max_size=cfg.algo.replay_capacity,
        # The learner samples only once the table holds `learning_starts` transitions.
        rate_limiter=reverb.rate_limiters.MinSize(1),
        signature=wire.transition_signature(time_step_spec, action_spec),
    )


class TransitionWriter:
    """A collector's writer: one TrajectoryWriter per env process, kept across its
    segments, so the last step of one segment and the first of the next make a
    transition too."""

    def __init__(self, client: reverb.Client, envs: int):
        self._writers = [client.trajectory_writer(num_keep_alive_refs=2) for _ in range(envs)]
        self._previous = [None] * envs  # the step type of each env's last step written
        self._unflushed = 0

    def write(self, index: int, segment: dict) -> None:
        """Env `index`'s `segment` (env_process.EnvRunner.collect's fields)."""
        writer, fields = self._writers[index], wire.TRANSITION_FIELDS
        for t in range(len(segment["reward"])):
            writer.append({name: segment[name][t] for name in fields})
            if self._previous[index] not in (None, env_process.LAST):
                writer.create_item(
                    REPLAY, 1.0, {name: writer.history[name][-2:] for name in fields}
                )
                self._unflushed += 1
                if self._unflushed >= FLUSH_ITEMS:
                    self.flush()
            self._previous[index] = segment["step_type"][t]

    def flush(self) -> None:
        """Returns once every transition written is in the table; raises reverb's
        DeadlineExceededError if the server has not taken them in FLUSH_TIMEOUT_MS."""
        for writer in self._writers:
            writer.flush(timeout_ms=FLUSH_TIMEOUT_MS)
        self._unflushed = 0


class LostServer(RuntimeError):
    """The Reverb server did not answer the learner."""


class ReverbReplay:
    """The learner's side: the table's size, and batches of its transitions sampled
    inside the gradient steps' `tf.function` (sac.Learner's `replay`)."""

    def __init__(self, address: str, batch_size: int, timeout_seconds: float):
        """Waits up to `timeout_seconds` for the table's signature (Reverb's
        DeadlineExceededError after it). The dataset reconnects to a restarted server by
        itself and waits, inside the gradient steps, for its table to fill again, which
        the collectors do."""
        self._client = reverb.Client(address)
        dataset = reverb.TrajectoryDataset.from_table_signature(
            server_address=address,
            table=REPLAY,
            max_in_flight_samples_per_worker=2 * batch_size,
            get_signature_timeout_secs=int(timeout_seconds),
        )
        batches = dataset.map(lambda sample: sample.data).batch(batch_size, drop_remainder=True)
        self._batches = iter(batches.prefetch(1))

    def size(self) -> int:
        """The transitions in the table; LostServer if the server does not answer."""
        try:
            return self._client.server_info(timeout=5)[REPLAY].current_size
        except (RuntimeError, reverb.errors.ReverbError) as e:
            raise LostServer(type(e).__name__) from e

    def sample(self, batch_size: int):
        """A batch of transitions ([batch_size, 2] steps), as the table's dataset batches them."""
        del batch_size  # the dataset's, the same run's --batch_size
        data = next(self._batches)
        return trajectory.Trajectory(policy_info=(), **data)

    def tracked(self) -> dict:
        """Nothing: the table lives in the Reverb server, beyond the learner's restarts."""
        return {}
