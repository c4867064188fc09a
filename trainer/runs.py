"""Run ids: valid Kubernetes names, so a run id can name a Job and its pods."""

from __future__ import annotations

import contextlib
import datetime
import json
import os
import re

from trainer import config, layout
from trainer.config import Config
from trainer.errors import UsageError

MAX_LEN = 63
_VALID = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# Anything that starts like a URL scheme: `s3:`, `gs:` without its slashes, `http:` ...
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def check_logdir(logdir: str) -> None:
    """ValueError unless `logdir` is a local path or a well-formed gs://BUCKET[/PATH].

    A typo such as `gs:/bucket/runs` would otherwise be a local directory named `gs:`,
    and the run would never reach the bucket.
    """
    if logdir.startswith("gs://"):
        from trainer import storage  # the Google Cloud libraries load only for gs://

        storage.parse_url(logdir)
    elif _SCHEME.match(logdir):
        raise ValueError(
            f"--logdir {logdir!r} is neither a local path nor gs://BUCKET[/PATH]; "
            "Google Cloud Storage is the only remote storage"
        )


def slug(text: str) -> str:
    """Lowercase letters, digits and single dashes."""
    return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", text.lower())).strip("-")


def make_run_id(
    agent: str, env_id: str, now: datetime.datetime | None = None, max_len: int = MAX_LEN
) -> str:
    """`<agent>-<env>-<yyyymmdd-hhmmss>`, cut to a valid Kubernetes name of `max_len`.

    A run kind may allow fewer than 63 characters (a Katib Experiment's name, 40, holds
    the run id after a prefix); the agent and env part is cut, never the time stamp.
    """
    now = now or datetime.datetime.now()
    stamp = now.strftime("%Y%m%d-%H%M%S")
    head = slug(f"{agent}-{env_id}")[: min(max_len, MAX_LEN) - len(stamp) - 1].strip("-")
    return f"{head}-{stamp}" if head else stamp


def check_run_id(run_id: str) -> None:
    """Raises ValueError unless `run_id` is a valid Kubernetes name."""
    if len(run_id) > MAX_LEN or not _VALID.match(run_id):
        raise ValueError(
            f"run id {run_id!r} is not a valid Kubernetes name: use at most {MAX_LEN} "
            "lowercase letters, digits and dashes, starting and ending with a letter or digit"
        )


def export_dir(final: str, write) -> None:
    """Calls `write(staging)` beside `final` and swaps the result in, so a reader never
    sees half of one: `final` is renamed to `final.old` first, which a reader between the
    two renames falls back on (render.plan)."""
    import shutil

    staging, old = final + ".tmp", final + ".old"
    for path in (staging, old):
        shutil.rmtree(path, ignore_errors=True)
    write(staging)
    if os.path.exists(final):
        os.rename(final, old)
    os.rename(staging, final)
    shutil.rmtree(old, ignore_errors=True)


def write_atomic(path: str, text: str) -> None:
    """Writes `path` whole or not at all: a temp file beside it, fsynced, then renamed.

    A full disk or a crash mid-write leaves the old file (or none), never a torn one.
    """
    tmp = f"{path}.tmp"
    try:
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def list_runs(logdir: str) -> list[str]:
    """Ids of the runs under `logdir` (directories with a config.json), newest first."""
    if not os.path.isdir(logdir):
        return []
    found = [
        (os.path.getmtime(os.path.join(logdir, name)), name)
        for name in os.listdir(logdir)
        if os.path.isfile(os.path.join(logdir, name, layout.CONFIG))
    ]
    return [name for _, name in sorted(found, reverse=True)]


def latest_run(logdir: str) -> str | None:
    """The directory of the most recently changed run under `logdir`, if any."""
    names = list_runs(logdir)
    return os.path.join(logdir, names[0]) if names else None


def missing_run(logdir: str, run: str, shown: int = 5) -> str:
    """One line saying that `run` is not under `logdir`, naming the runs that are."""
    names = list_runs(logdir)
    if not names:
        return f"no run {run!r} under {logdir}, and no other run there; `make train` makes one"
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return (
        f"no run {run!r} under {logdir}; runs there, newest first: {', '.join(names[:shown])}{more}"
    )


# Run locks this process holds (path -> open file), kept until it exits.
_HELD: dict = {}


class RunBusy(UsageError):
    """Another process trains the run; the message names it."""


def lock_run(local_root: str, run_id: str):
    """Holds `local_root/.RUN.lock` for this process's life, or raises RunBusy naming the holder.

    flock(2): the kernel releases it when the holder exits however it exits, so a
    crashed trainer never leaves a stale lock. The file sits beside the run, not in
    it, so it is never uploaded. Returns the open file; keep it open.
    """
    import fcntl
    import json
    import socket
    import time

    path = os.path.abspath(os.path.join(local_root, f".{run_id}.lock"))
    if path in _HELD:  # this process holds it already
        return _HELD[path]
    handle = open(path, "a+")  # noqa: SIM115  (held until the process exits)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        try:
            holder = json.loads(handle.read())
        except ValueError:
            holder = {}
        handle.close()
        since = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(holder.get("since", 0)))
        raise RunBusy(
            f"run {run_id} is being trained by pid {holder.get('pid', '?')} on "
            f"{holder.get('host', '?')} since {since}; wait for it, stop it, or choose "
            "another --run"
        ) from None
    handle.seek(0)
    handle.truncate()
    try:
        handle.write(
            json.dumps({"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()})
        )
        handle.flush()
    except OSError:  # a full disk: closed now, or its garbage collection says it again
        with contextlib.suppress(OSError):
            handle.close()
        raise
    _HELD[path] = handle
    return handle


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (OSError, TensorFlow's, ffmpeg's) comes from a full disk."""
    import errno

    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def disk_full_message(run_dir: str) -> str:
    """One line: where the disk is full, how much is free, the last intact checkpoint."""
    import shutil

    free = shutil.disk_usage(run_dir).free if os.path.exists(run_dir) else 0
    return (
        f"no space left on the disk of {run_dir} ({free / 2**20:.1f} MB free); the last "
        f"intact checkpoint is {_last_checkpoint(run_dir)}; free some space and run the "
        "same command to resume"
    )


def is_unwritable(error: BaseException) -> bool:
    """Whether `error` (OSError, TensorFlow's) says a file may not be written there:
    permissions, or a file system turned read-only."""
    import errno

    return (
        getattr(error, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)
        or type(error).__name__ == "PermissionDeniedError"  # TensorFlow's, for EACCES
        or "Read-only file system" in str(error)  # TensorFlow's EROFS is another class
    )


def unwritable_message(run_dir: str, error: BaseException) -> str:
    """One line: what could not be written, why, and the last intact checkpoint."""
    if isinstance(error, OSError) and error.strerror:
        reason = f"{error.strerror}: {error.filename}"
    else:  # TensorFlow's "{{function_node ...}} PATH; Permission denied [Op:SaveV2]"
        reason = re.sub(r"^\{\{.*?\}\}\s*|\s*\[Op:\w+\]$", "", str(error).splitlines()[0])
    return (
        f"cannot write in {run_dir} ({reason}); the last intact checkpoint is "
        f"{_last_checkpoint(run_dir)}; make it writable and run the same command to resume"
    )


def _last_checkpoint(run_dir: str) -> str:
    pointer = os.path.join(run_dir, layout.CHECKPOINT_POINTER)
    if not os.path.exists(pointer):
        return "none yet"
    with open(pointer) as f:  # TensorFlow's pointer names only complete checkpoints
        first = f.readline()
    return first.split('"')[1] if '"' in first else "none yet"


def save_config(cfg: Config, path: str) -> None:
    """Writes a run's config.json atomically (see write_atomic)."""
    write_atomic(path, json.dumps(config.to_dict(cfg), indent=2, sort_keys=True) + "\n")


def load_config(path: str) -> Config:
    """Reads a run's config.json; ValueError if it is not a valid config."""
    try:
        with open(path) as f:
            data = json.load(f)
        if not isinstance(data, dict):
            raise ValueError("not a JSON object")
        return config.from_dict(data)
    except (OSError, ValueError, TypeError) as e:
        raise ValueError(f"cannot read {path}: {e}") from e
