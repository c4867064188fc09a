"""One writer per gs:// run across machines: a lease object in the bucket."""

from __future__ import annotations

import contextlib
import json
import sys
import time

from google.api_core import exceptions as api_exceptions

from trainer.storage.bucket import StorageError

LEASE = ".lease.json"  # in the bucket only: never a local file, never uploaded


class RunBusy(StorageError):
    """Another live trainer holds the run's lease in the bucket."""


class Lease:
    """One writer per gs:// run across machines: RUN/.lease.json in the bucket.

    Taken with a create-only write (if_generation_match=0) and renewed at every full
    upload; a lease not renewed for `seconds` belongs to a dead trainer (a pod
    killed without SIGTERM) and is taken over, after waiting for it to lapse. A
    lease renewed meanwhile means a live trainer: RunBusy. Cloud Storage makes the
    create and the take-over atomic; the storage emulator does not check the
    preconditions, so the tests cover the protocol, not the race.
    """

    def __init__(self, bucket, name: str, holder: dict, seconds: float = 300.0, log=None):
        self._bucket, self._name, self._holder, self.seconds = bucket, name, holder, seconds
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._generation = None

    def _write(self, generation: int) -> None:
        blob = self._bucket.blob(self._name)
        body = {**self._holder, "expires": time.time() + self.seconds}
        blob.upload_from_string(json.dumps(body), if_generation_match=generation)
        self._generation = blob.generation

    def take(self) -> None:
        """Holds the lease, waiting out a lapsed holder's; RunBusy if it is renewed."""
        while True:
            current = self._bucket.get_blob(self._name)
            if current is None:
                try:
                    return self._write(0)
                except api_exceptions.PreconditionFailed:
                    continue  # created meanwhile: look again
            generation = current.generation  # before the download, which may reset it
            held = json.loads(current.download_as_text())
            wait = held.get("expires", 0) - time.time()
            if wait > 0:
                self._log(
                    f"The run's lease is held by pid {held.get('pid')} on {held.get('host')}; "
                    f"waiting {wait:.0f} s for it to lapse (a live trainer renews it)"
                )
                time.sleep(wait + 1)
                latest = self._bucket.get_blob(self._name)
                if latest is not None and latest.generation != generation:
                    raise RunBusy(
                        f"the run is being trained by pid {held.get('pid')} on "
                        f"{held.get('host')}, which renews its lease in the bucket; wait for "
                        "it, stop it, or choose another --run"
                    )
            try:
                return self._write(generation)
            except api_exceptions.PreconditionFailed:
                continue  # someone else took it first: look again

    def renew(self) -> None:
        if self._generation is not None:
            self._write(self._generation)

    def release(self) -> None:
        if self._generation is not None:
            with contextlib.suppress(api_exceptions.GoogleAPIError):
                self._bucket.blob(self._name).delete(if_generation_match=self._generation)
            self._generation = None
