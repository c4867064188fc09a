"""Many files uploaded at once, each to its object, until a deadline."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

from google.api_core import exceptions as api_exceptions

from trainer.storage.bucket import OutOfTime, StorageError

WORKERS = 8  # files uploaded at once


def put(
    uploads: dict[str, tuple[object, str]],
    url: str,
    left: Callable[[], float],
    request: Callable[[], dict],
) -> set[str]:
    """Uploads each name's file to its blob (`uploads`: name -> (blob, path)) in parallel,
    each request with `request()`'s retry and timeout; returns the names whose files were
    deleted meanwhile. StorageError on a failure; OutOfTime, naming the rest, once `left()`
    seconds are up.

    Daemon threads rather than transfer_manager's pool: a pool is joined at exit, so an
    upload under way would hold up the exit past the deadline.
    """
    todo, failed, done, lock = list(reversed(uploads)), [], set(), threading.Lock()
    vanished: set[str] = set()

    def work():
        while left() > 0:
            with lock:
                if not todo:
                    return
                name = todo.pop()
            blob, path = uploads[name]
            try:
                blob.upload_from_filename(path, **request())
                done.add(name)
            except FileNotFoundError:  # deleted by the run since it was listed
                vanished.add(name)
                done.add(name)
            except (api_exceptions.GoogleAPIError, OSError, ValueError) as e:
                failed.append(e)

    threads = [threading.Thread(target=work, daemon=True) for _ in list(uploads)[:WORKERS]]
    for thread in threads:
        thread.start()
    for thread in threads:
        seconds = left()
        thread.join(timeout=None if math.isinf(seconds) else max(0.0, seconds))
    if failed:
        raise StorageError(f"upload of {url} failed: {type(failed[0]).__name__}: {failed[0]}")
    if len(done) < len(uploads):
        raise OutOfTime(url, [name for name in uploads if name not in done])
    return vanished
