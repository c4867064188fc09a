"""One writer per gs:// run across machines: a lease object in the bucket."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import sys
import time

from google.api_core import exceptions as api_exceptions

from trainer.storage.bucket import StorageError, retry_policy

LEASE = ".lease.json"  # in the bucket only: never a local file, never uploaded
SECONDS = 300.0  # a lease not renewed for this long belongs to a dead trainer


class RunBusy(StorageError):
    """Another live trainer holds the run's lease in the bucket."""


class Lease:
    """One writer per gs:// run across machines: RUN/.lease.json in the bucket.

    Taken with a create-only write (if_generation_match=0) and renewed at every full
    upload (a write conditional on the generation it last wrote). A lease not renewed
    for `seconds` belongs to a dead trainer (a pod killed without SIGTERM) and is
    taken over, conditional on the generation that was seen lapse; a lease renewed
    meanwhile means a live trainer: RunBusy. No machine's wall clock is trusted (one
    ten minutes ahead once took over a live lease at once): a lease's age is the
    bucket's own time, the `updated` of a probe object written now minus the lease's
    `updated`, and the wait for it to lapse is timed on this machine's monotonic
    clock (`monotonic`, `sleep` and `clock`, the latter only recorded, are injectable).
    A lease that cannot be read (corrupt) is taken over at once, in one line.
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
        self._bucket, self._name, self._holder = bucket, name, holder
        self.seconds = SECONDS if seconds is None else seconds
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._clock, self._monotonic, self._sleep = clock, monotonic, sleep
        self._generation = None

    def _write(self, generation: int, timeout: float = 60.0) -> None:
        blob = self._bucket.blob(self._name)
        body = {**self._holder, "renewed": self._clock(), "seconds": self.seconds}
        blob.upload_from_string(
            json.dumps(body),
            if_generation_match=generation,
            timeout=timeout,
            retry=retry_policy(timeout),
        )
        self._generation = blob.generation

    def _age(self, lease) -> float:
        """Seconds since `lease` was written, by the bucket's clock (a probe's `updated`)."""
        # Named by host and pid (pods are often pid 1): takers never share one.
        probe = self._bucket.blob(f"{self._name}.clock-{socket.gethostname()}-{os.getpid()}")
        probe.upload_from_string(b"")
        try:
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
                held = json.loads(current.download_as_bytes(if_generation_match=generation))
                seconds = float(held.get("seconds", self.seconds))
            except (ValueError, TypeError, AttributeError):
                self._log(
                    f"The run's lease {self._name} in the bucket is unreadable (not a lease "
                    "this trainer writes); taking it over"
                )
                held, seconds = {}, 0.0
            except (api_exceptions.NotFound, api_exceptions.PreconditionFailed):
                continue  # released or renewed meanwhile: look again
            wait = seconds - self._age(current) if seconds else 0.0
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
        if self._generation is not None:
            self._write(self._generation, timeout)

    def release(self, timeout: float = 60.0) -> None:
        if self._generation is not None:
            with contextlib.suppress(api_exceptions.GoogleAPIError):
                self._bucket.blob(self._name).delete(
                    if_generation_match=self._generation,
                    timeout=timeout,
                    retry=retry_policy(timeout),
                )
            self._generation = None
