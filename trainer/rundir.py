"""A run's directory: the one home of its layout, its lock, its settings and its command log.

    RUN/config.json          the settings the run was created with, written once
    RUN/command.txt          every command that ran it, one per line
    RUN/checkpoints/         TensorFlow's checkpoints; `checkpoint` names the newest
    RUN/policy/              the exported policy, a SavedModel
    RUN/eval.json            the final evaluation (`eval` writes eval-<step>.json beside it)
    RUN/train/, RUN/eval/    TensorBoard's event files
    RUN/render/TIME/         what `render` filmed; RUN/learning_curve.png, what `plot` drew

A camera run adds its settings (vision.json), its rounds (dagger.json) and its teacher's
run in teacher/ (trainer/dagger.py). storage/ sends files by the names below. Starting a
run (checks, staging from gs://, the lease) is start.py's.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import os
import re
import shutil
from collections.abc import Mapping
from typing import Any

from trainer import checks, errors, processes, resume, schema
from trainer.config import CAMERA_ENV_ID, Config
from trainer.errors import Finished, UsageError

# Run locks this process holds (path -> open file), kept until it exits.
_HELD: dict = {}


class RunBusy(UsageError):
    """Another process trains the run; the message names it."""


class AlreadyFinished(Finished):
    """The run has trained to --total_steps already: said in one line, exit code 0."""


@dataclasses.dataclass(frozen=True)
class RunDir:
    """The directory of one run, local (a gs:// run's staging copy stands for it)."""

    path: str

    CONFIG = "config.json"
    COMMAND = "command.txt"
    CHECKPOINTS = "checkpoints"
    CHECKPOINT_POINTER = CHECKPOINTS + "/checkpoint"  # TensorFlow's, naming the newest
    POLICY = "policy"
    EVAL_JSON = "eval.json"
    TRAIN_EVENTS = "train"
    EVAL_EVENTS = "eval"
    VISION = "vision.json"  # a camera run's settings, written once
    DAGGER_STATE = "dagger.json"  # a camera run's finished rounds, naming the last student
    TEACHER = "teacher"  # a camera run's state policy, when none is given
    REVERB = "reverb"  # a distributed run's Reverb checkpoints, made by the server
    RENDERS = "render"  # `render` films: render/<time>/ with video.mp4, video.gif, ...
    LEARNING_CURVE = "learning_curve.png"  # `plot`'s picture

    def file(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def config(self) -> str:
        return self.file(self.CONFIG)

    @property
    def checkpoints(self) -> str:
        return self.file(self.CHECKPOINTS)

    @property
    def policy(self) -> str:
        return self.file(self.POLICY)

    @property
    def eval_json(self) -> str:
        return self.file(self.EVAL_JSON)

    @property
    def train_events(self) -> str:
        return self.file(self.TRAIN_EVENTS)

    @property
    def eval_events(self) -> str:
        return self.file(self.EVAL_EVENTS)

    def eval_at(self, step: int) -> str:
        """Where `eval` writes an evaluation of the checkpoint at `step`."""
        return self.file(f"eval-{step}.json")

    def has_config(self) -> bool:
        return os.path.isfile(self.config)

    def load_config(self) -> Config:
        """The run's settings; ValueError if config.json is missing or not a valid config."""
        try:
            with open(self.config) as f:
                data = json.load(f)
            if not isinstance(data, dict):
                raise ValueError("not a JSON object")
            return schema.from_dict(data)
        except (OSError, ValueError, TypeError) as e:
            raise ValueError(f"cannot read {self.config}: {e}") from e

    def save_config(self, cfg: Config) -> None:
        """Writes config.json whole (write_atomic), making the directory if need be."""
        os.makedirs(self.path, exist_ok=True)
        write_atomic(self.config, json.dumps(schema.to_dict(cfg), indent=2, sort_keys=True) + "\n")

    def log_command(self, command: str) -> None:
        """Appends `command` to command.txt, rewritten whole."""
        path, before = self.file(self.COMMAND), ""
        if os.path.exists(path):
            with open(path) as f:
                before = f.read()
        write_atomic(path, before + command + "\n")

    def resumed(self, cfg: Config, given: Mapping[str, Any] | None) -> Config:
        """The run's config: config.json with the flags in `given` (name: value; `cfg`
        itself when None) and `cfg`'s location (resume.py's rules).

        UsageError if a given field that schema.resumable leaves out differs;
        AlreadyFinished if the run has trained to its total steps.
        """
        try:
            saved = self.load_config()
        except ValueError as e:
            raise UsageError(f"{e}; fix it or start a new run with another --run") from None
        cfg = resume.merged(saved, cfg, given, keep=resume.LOCATION_FIELDS)
        diffs = resume.differences(saved, cfg)
        if diffs:
            raise UsageError(
                f"run {self.path} exists with another config ({'; '.join(diffs)}); "
                "pass the same flags to resume it, or another --run"
            )
        with errors.usage():
            checks.validate(cfg)
        finished = self.finished_at()
        # A camera run's eval.json counts frames, and dagger.train knows when it is done.
        if cfg.env_id != CAMERA_ENV_ID and finished is not None and finished >= cfg.total_steps:
            raise AlreadyFinished(
                f"Run {self.path} already finished at step {finished:,} (eval.json); "
                f"raise --total_steps to train on, or `make eval RUN={cfg.run}` to evaluate again"
            )
        return cfg

    def finished_at(self) -> int | None:
        """The env step of the run's final evaluation (eval.json), if it has one."""
        try:
            with open(self.eval_json) as f:
                return int(json.load(f)["env_steps"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def last_checkpoint(self) -> str:
        """The newest complete checkpoint's name, or 'none yet'."""
        pointer = self.file(self.CHECKPOINT_POINTER)
        if not os.path.exists(pointer):
            return "none yet"
        with open(pointer) as f:  # TensorFlow's pointer names only complete checkpoints
            first = f.readline()
        return first.split('"')[1] if '"' in first else "none yet"

    def lock(self):
        """Holds `.RUN.lock` beside the run for this process's life, or raises RunBusy
        naming the holder.

        flock(2): the kernel releases it when the holder exits however it exits, so a
        crashed trainer never leaves a stale lock. The file sits beside the run, not in
        it, so it is never uploaded. Returns the open file; keep it open.
        """
        import fcntl
        import socket
        import time

        root, run_id = os.path.split(os.path.abspath(self.path))
        path = os.path.join(root, f".{run_id}.lock")
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
            holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
            handle.write(json.dumps(holder))
            handle.flush()
        except OSError:  # a full disk: closed now, or its garbage collection says it again
            with contextlib.suppress(OSError):
                handle.close()
            raise
        _HELD[path] = handle
        return handle

    def failure_message(self, error: BaseException) -> str | None:
        """One line for a disk that is full or a directory that may not be written
        (OSError, TensorFlow's, ffmpeg's), naming the last intact checkpoint; else None."""
        if is_disk_full(error):
            free = shutil.disk_usage(self.path).free if os.path.exists(self.path) else 0
            what = f"no space left on the disk of {self.path} ({free / 2**20:.1f} MB free)"
            fix = "free some space"
        elif _is_unwritable(error):
            if isinstance(error, OSError) and error.strerror:
                reason = f"{error.strerror}: {error.filename}"
            else:  # TensorFlow's "{{function_node ...}} PATH; Permission denied [Op:SaveV2]"
                reason = re.sub(r"^\{\{.*?\}\}\s*|\s*\[Op:\w+\]$", "", str(error).splitlines()[0])
            what, fix = f"cannot write in {self.path} ({reason})", "make it writable"
        else:
            return None
        return (
            f"{what}; the last intact checkpoint is {self.last_checkpoint()}; {fix} and run "
            "the same command to resume"
        )


def is_disk_full(error: BaseException) -> bool:
    """Whether `error` (OSError, TensorFlow's, ffmpeg's) comes from a full disk."""
    return getattr(error, "errno", None) == errno.ENOSPC or "No space left on device" in str(error)


def _is_unwritable(error: BaseException) -> bool:
    """Whether `error` says a file may not be written there: permissions, or a file
    system turned read-only."""
    return (
        getattr(error, "errno", None) in (errno.EACCES, errno.EPERM, errno.EROFS)
        or type(error).__name__ == "PermissionDeniedError"  # TensorFlow's, for EACCES
        or "Read-only file system" in str(error)  # TensorFlow's EROFS is another class
    )


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


def export_dir(final: str, write) -> None:
    """Calls `write(staging)` beside `final` and swaps the result in, so a reader never
    sees half of one: `final` is renamed to `final.old` first, which a reader between the
    two renames falls back on (render.plan). A SIGTERM or Ctrl-C meanwhile waits for
    the swap."""
    staging, old = final + ".tmp", final + ".old"
    with processes.signals_held():  # a SavedModel export must not be cut: processes.py
        for path in (staging, old):
            shutil.rmtree(path, ignore_errors=True)
        write(staging)
        if os.path.exists(final):
            os.rename(final, old)
        os.rename(staging, final)
        shutil.rmtree(old, ignore_errors=True)


def recover_export(final: str) -> None:
    """Puts back the previous export if a crash came between export_dir's two renames."""
    if not os.path.exists(final) and os.path.exists(final + ".old"):
        os.rename(final + ".old", final)
