"""One writer per gs:// run across machines: a lease object in the bucket."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import socket
import sys
import threading
import time

from google.api_core import exceptions as api_exceptions

from trainer.storage.bucket import FAILURES, StorageError, retry_policy

LEASE = ".lease.json"  # in the bucket only: never a local file, never uploaded
SECONDS = 300.0  # a lease not renewed for this long belongs to a dead trainer
# After SIGTERM, how long releasing the lease may take (its request is sent even when
# its answer is not awaited); otherwise a minute.
RELEASE_SECONDS = 1.0


class RunBusy(StorageError):
    """Another live trainer holds the run's lease in the bucket."""


class LeaseLost(StorageError):
    """Another machine took over this trainer's lease: it must stop writing the run."""


class Lease:
    """One writer per gs:// run across machines: RUN/.lease.json in the bucket.

    Taken with a create-only write (if_generation_match=0) and renewed, once `keep()`
    is called, every `seconds`/4 by a heartbeat thread, and before every upload (a
    write conditional on the generation it last wrote). A 412 on a renewal means
    another machine took the lease over: LeaseLost. A write whose answer was lost is
    retried and then meets its own generation (412): the random `token` in the lease
    tells it apart, and its generation is adopted.

    A lease not renewed for `seconds` belongs to a dead trainer (a pod killed without
    SIGTERM) and is taken over, conditional on the generation that was seen lapse; a
    lease renewed meanwhile means a live trainer: RunBusy. No machine's wall clock is
    trusted (one ten minutes ahead once took over a live lease at once): a lease's age
    is the bucket's own time, the `updated` of a probe object written now minus the
    lease's `updated`, and the wait for it to lapse is timed on this machine's
    monotonic clock (`monotonic`, `sleep` and `clock`, the latter only recorded, are
    injectable). A lease that cannot be read (corrupt) is taken over at once, in one
    line; one asking for more than SECONDS is waited out for SECONDS.
    """

    def __init__(
        self,
        bucket,
        name: str,
        holder: dict,
        seconds: float | None = None,
        log=None,
        clock=time.time,
        monotonic=time.monotonic,
        sleep=time.sleep,
    ):
        self._bucket, self._name = bucket, name
        self._holder = {**holder, "token": secrets.token_hex(16)}
        self.seconds = SECONDS if seconds is None else seconds
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._generation = None
        self._lock = threading.Lock()  # one write at a time: the heartbeat's or an upload's
        self._stop = threading.Event()
        self.lost: LeaseLost | None = None  # set once a renewal found the lease taken over

    def _write(self, generation: int, timeout: float = 60.0) -> None:
        """Writes the lease if its generation is `generation`; PreconditionFailed if not,
        unless the lease there is this one's own (a retried write whose answer was lost)."""
        blob = self._bucket.blob(self._name)
        body = {**self._holder, "renewed": self._clock(), "seconds": self.seconds}
        try:
            blob.upload_from_string(
                json.dumps(body),
                if_generation_match=generation,
                timeout=timeout,
                retry=retry_policy(timeout),
            )
            self._generation = blob.generation
        except api_exceptions.PreconditionFailed:
            ours = self._own_generation(timeout)
            if ours is None:
                raise
            self._generation = ours

    def _own_generation(self, timeout: float) -> int | None:
        """The lease's generation if the lease in the bucket is this one's, else None."""
        try:
            current = self._bucket.get_blob(self._name, timeout=timeout)
            # Before the read: a download resets the blob's generation from its headers.
            generation = None if current is None else current.generation
            if current is not None and self._read(current).get("token") == self._holder["token"]:
                return generation
        except (ValueError, TypeError, api_exceptions.NotFound, api_exceptions.PreconditionFailed):
            pass  # gone, changed or unreadable meanwhile: not this one's
        return None

    def _read(self, blob) -> dict:
        """The lease `blob` holds; ValueError (and kin) if it is no lease."""
        held = json.loads(blob.download_as_bytes(if_generation_match=blob.generation))
        if not isinstance(held, dict):
            raise ValueError("not a JSON object")
        return held

    def _age(self, lease) -> float | None:
        """Seconds since `lease` was written, by the bucket's clock (a probe's `updated`);
        None if the bucket did not say."""
        # Named by host and pid (pods are often pid 1): takers never share one.
        probe = self._bucket.blob(f"{self._name}.clock-{socket.gethostname()}-{os.getpid()}")
        probe.upload_from_string(b"", timeout=60, retry=retry_policy(60))
        try:
            if probe.updated is None or lease.updated is None:
                return None
            return (probe.updated - lease.updated).total_seconds()
        finally:
            with contextlib.suppress(api_exceptions.GoogleAPIError):
                probe.delete(if_generation_match=probe.generation)

    def take(self) -> None:
        """Holds the lease, waiting out a lapsed holder's; RunBusy if it is renewed."""
        while True:
            current = self._bucket.get_blob(self._name)
            if current is None:
                try:
                    return self._write(0)
                except api_exceptions.PreconditionFailed:
                    continue  # created meanwhile: look again
            generation = current.generation
            try:
                held = self._read(current)
                seconds = _bounded(held.get("seconds", self.seconds))
            except (ValueError, TypeError, AttributeError):
                self._log(
                    f"The run's lease {self._name} in the bucket is unreadable (not a lease "
                    "this trainer writes); taking it over"
                )
                held, seconds = {}, 0.0
            except (api_exceptions.NotFound, api_exceptions.PreconditionFailed):
                continue  # released or renewed meanwhile: look again
            age = self._age(current) if seconds else 0.0
            wait = seconds if age is None else seconds - age
            if wait > 0 and not self._lapsed(held, generation, wait):
                raise RunBusy(
                    f"the run is being trained by pid {held.get('pid')} on "
                    f"{held.get('host')}, which renews its lease in the bucket; wait for "
                    "it, stop it, or choose another --run"
                )
            try:
                return self._write(generation)
            except api_exceptions.PreconditionFailed:
                continue  # someone else took it first: look again

    def _lapsed(self, held: dict, generation: int, wait: float) -> bool:
        """Waits `wait` s on the monotonic clock; whether the lease stayed unrenewed."""
        self._log(
            f"The run's lease is held by pid {held.get('pid')} on {held.get('host')}; "
            f"waiting {wait:.0f} s for it to lapse (a live trainer renews it)"
        )
        until = self._monotonic() + wait + 1
        while self._monotonic() < until:
            self._sleep(until - self._monotonic())
        latest = self._bucket.get_blob(self._name)
        return latest is None or latest.generation == generation

    def renew(self, timeout: float = 60.0) -> None:
        """Writes the lease again; LeaseLost if another machine took it over."""
        self.check()
        if not self._lock.acquire(timeout=timeout):  # the heartbeat's renewal is slow
            raise StorageError(f"renewing the run's lease {self._name} took over {timeout:.0f} s")
        try:
            if self._generation is not None:
                self._write(self._generation, timeout)
        except api_exceptions.PreconditionFailed:
            self._generation = None
            self.lost = LeaseLost(
                f"another machine took over the run's lease {self._name} (a lease not "
                f"renewed for {self.seconds:.0f} s may be taken over); stopped without writing "
                "more: the run in the bucket is intact, and that machine trains it on"
            )
            raise self.lost from None
        finally:
            self._lock.release()

    def check(self) -> None:
        """LeaseLost if a renewal found the lease taken over."""
        if self.lost is not None:
            raise self.lost

    def keep(self) -> None:
        """Renews the lease every `seconds`/4 in a thread until `release()` or LeaseLost."""
        interval = self.seconds / 4

        def beat():
            while not self._stop.wait(interval):
                try:
                    self.renew(timeout=max(1.0, min(60.0, interval)))
                except LeaseLost:
                    return
                except FAILURES:
                    pass  # storage down: the next beat tries again, before the lease lapses

        threading.Thread(target=beat, name="lease-heartbeat", daemon=True).start()

    def release(self, timeout: float = 60.0) -> None:
        """Deletes the lease (if this trainer still holds it) and stops its heartbeat."""
        self._stop.set()
        # A renewal under way may hold the lock; the delete is then refused (412) and the
        # lease lapses by itself.
        locked = self._lock.acquire(timeout=timeout)
        try:
            if self._generation is not None:
                with contextlib.suppress(*FAILURES):
                    self._bucket.blob(self._name).delete(
                        if_generation_match=self._generation,
                        timeout=timeout,
                        retry=retry_policy(timeout),
                    )
                self._generation = None
        finally:
            if locked:
                self._lock.release()


def _bounded(seconds) -> float:
    """A held lease's `seconds`, at most SECONDS (a huge one would block takers for good)."""
    seconds = float(seconds)
    return SECONDS if not math.isfinite(seconds) or seconds > SECONDS else max(0.0, seconds)
