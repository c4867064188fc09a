"""Uploads a run in the background while it trains, and once more at the end, in time;
`bound_sigterm` holds those uploads to the SIGTERM budget."""

from __future__ import annotations

import signal
import sys
import threading
import time

from google.api_core import exceptions as api_exceptions

from trainer.storage.bucket import OutOfTime, StorageError
from trainer.storage.lease import RELEASE_SECONDS, LeaseLost
from trainer.storage.mirror import RunMirror

# Of a SIGTERM budget, what the uploads leave for the exit: releasing the lease (its
# request is sent even when its answer is not awaited) and the interpreter's own exit,
# measured at up to 3.3 s on 2 oversubscribed cores.
RESERVE = RELEASE_SECONDS + 4.0


class Syncer:
    """Uploads a run in a background thread whenever asked; training never waits for it.

    A failed upload is retried with growing pauses; `close()` makes a last upload
    and raises StorageError only if storage never came back. After
    `stop_within(budget)` (SIGTERM: the pod is killed soon) every upload ends in
    time, and `close()` names in one line what stays local instead of raising.
    Once the lease is lost to another machine (LeaseLost) nothing more is uploaded,
    and `request()` and `close()` raise it: the trainer stops.
    """

    def __init__(self, mirror: RunMirror, log=None, final_deadline: float = 300.0):
        self._mirror, self._final_deadline = mirror, final_deadline
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._wanted = threading.Event()
        self._stopping = threading.Event()
        self.closing = False  # close() has begun: a SIGTERM now only sets the deadline
        self._deadline: float | None = None  # time.monotonic() by which uploads end
        self._lock = threading.Lock()
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name="gcs-sync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        """Asks for an upload; LeaseLost if another machine has taken the run over."""
        if self._mirror.lease is not None:
            self._mirror.lease.check()
        self._wanted.set()

    def stop_within(self, budget: float) -> None:
        """Every upload from now on ends RESERVE seconds before `budget` seconds from now.

        Safe in a signal handler: it only sets the deadline, and only the first time.
        """
        if self._deadline is None:
            self._deadline = time.monotonic() + budget - RESERVE
            self._mirror.stop_by(self._deadline)

    def _upload_once(self) -> bool:
        """One full upload: True when done, False when it failed (OutOfTime and
        LeaseLost pass through)."""
        with self._lock:
            try:
                self._mirror.upload()
                return True
            except (OutOfTime, LeaseLost):
                raise
            except (StorageError, api_exceptions.GoogleAPIError, OSError) as e:
                if self._deadline is not None:  # no time to retry: close() says what is left
                    raise OutOfTime(self._mirror.url, self._mirror.pending()) from e
                self.failures += 1
                self._log(f"warning: upload to {self._mirror.url} failed, will retry: {e}")
                return False

    def _loop(self) -> None:
        pause = 5.0
        while not self._stopping.is_set():
            self._wanted.wait()
            if self._stopping.is_set():
                return
            self._wanted.clear()
            try:
                uploaded = self._upload_once()
            except (OutOfTime, LeaseLost):
                return  # close() says what stays local, or raises LeaseLost
            if uploaded:
                pause = 5.0
            else:
                if self._stopping.wait(pause):  # close() takes over at once
                    return
                pause = min(pause * 2, 120.0)
                self._wanted.set()

    def close(self) -> None:
        """Stops the thread, then uploads until done: releases the lease. After SIGTERM
        (before or during close), gives up in time (one line); otherwise StorageError
        after `final_deadline` s; LeaseLost (nothing uploaded) if the lease was lost."""
        self.closing = True
        self._stopping.set()
        self._wanted.set()
        # In steps, so that a SIGTERM arriving meanwhile bounds the wait.
        while self._thread.is_alive() and (
            self._deadline is None or time.monotonic() < self._deadline
        ):
            self._thread.join(timeout=0.2)
        if self._mirror.lease is not None:
            self._mirror.lease.check()
        if self._thread.is_alive() or not self._final_upload():
            return self._gave_up()
        self._mirror.release_lease()  # everything is up: the next trainer may start

    def _final_upload(self) -> bool:
        """Uploads until done (True), or until the SIGTERM deadline passes (False)."""
        deadline, pause = time.monotonic() + self._final_deadline, 2.0
        while True:
            try:
                if self._upload_once():
                    return True
            except OutOfTime:
                return False
            if self._deadline is not None and time.monotonic() + pause > self._deadline:
                return False
            if time.monotonic() + pause > deadline:
                raise StorageError(
                    f"could not upload the run to {self._mirror.url} for "
                    f"{self._final_deadline:.0f} s; the local copy in {self._mirror.local_dir} "
                    "is complete, and the next start uploads it"
                )
            until = time.monotonic() + pause
            while time.monotonic() < until and self._deadline is None:
                time.sleep(0.2)  # in steps: a SIGTERM meanwhile ends the pause
            pause = min(pause * 2, 30.0)

    def _gave_up(self) -> None:
        """Says in one line what stays local, and frees the run for the next start."""
        pending = self._mirror.pending()
        more = f" and {len(pending) - 3} more" if len(pending) > 3 else ""
        what = f"{len(pending)} file(s) ({', '.join(pending[:3])}{more})" if pending else "none"
        self._log(
            f"Out of time after SIGTERM: not uploaded to {self._mirror.url}: {what}, nor its "
            f"marker; they stay in {self._mirror.local_dir}, and the next start with that "
            "staging directory uploads them"
        )
        self._mirror.stop_by(time.monotonic())  # uploads still under way start nothing more
        self._mirror.release_lease()


def bound_sigterm(syncer, budget: float):
    """On SIGTERM, uploads end within `budget` seconds of it; task.py's own handler then
    stops training as before (a checkpoint, exit 143).

    Once `syncer.close()` has begun, that handler waits: raising inside close() would
    abandon its final upload, the one line saying what stays local and the lease.
    Returns what delivers such a waiting SIGTERM, to be called after close().
    """
    previous, waiting = signal.getsignal(signal.SIGTERM), []

    def handler(signum, frame):
        syncer.stop_within(budget)
        if syncer.closing:
            waiting.append((signum, frame))
        elif callable(previous):
            previous(signum, frame)

    def deliver():
        if waiting and callable(previous):
            previous(*waiting[0])

    signal.signal(signal.SIGTERM, handler)
    return deliver
