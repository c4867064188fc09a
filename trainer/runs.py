"""Run ids, valid Kubernetes names so that a run id can name a Job and its pods, and the
runs under a log directory."""

from __future__ import annotations

import datetime
import os
import re

from trainer.rundir import RunDir

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


def list_runs(logdir: str) -> list[str]:
    """Ids of the runs under `logdir` (directories with a config.json), newest first."""
    if not os.path.isdir(logdir):
        return []
    found = [
        (os.path.getmtime(os.path.join(logdir, name)), name)
        for name in os.listdir(logdir)
        if RunDir(os.path.join(logdir, name)).has_config()
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
