"""Starting a command in its run directory: checked, locked, and for gs:// runs staged.

Everything here happens before any heavy work, and a refusal (UsageError) leaves
nothing behind: a local run lives in LOGDIR/RUN; a gs:// run in a local staging
copy, downloaded first when only the bucket has it, and uploaded by storage.Syncer.
"""

from __future__ import annotations

import dataclasses
import errno
import os
import socket
import sys
import tempfile
import time
from collections.abc import Mapping
from typing import Any

from trainer import checks, errors, processes, runs
from trainer.config import Config
from trainer.errors import TrainerError, UsageError
from trainer.rundir import AlreadyFinished, RunDir, is_disk_full


class DiskFull(TrainerError):
    """No room on the run's disk before training: one line naming it, exit code 1."""


class StorageDown(TrainerError):
    """Storage failed while a gs:// run was being staged: one line, exit code 1."""


def gcs_root(logdir: str, staging_dir: str):
    """(client, local staging root) for a gs:// LOGDIR whose bucket is usable."""
    from trainer import storage

    try:
        bucket, _ = storage.parse_url(logdir)
        client = storage.make_client()
        storage.check_bucket(client, bucket)
    except storage.StorageUnavailable as e:
        raise StorageDown(str(e)) from None
    except (ValueError, storage.StorageError) as e:
        raise UsageError(str(e)) from None
    return client, staging_root(logdir, staging_dir)


def prepare(cfg: Config, command: str, given: Mapping[str, Any] | None = None, check=None):
    """Checks everything about the run before any heavy work. `check(config)`, if given,
    sees the run's own settings: a new run's before storage is contacted or anything is
    written; a resumed run's saved ones once they are known (a gs:// run's after its
    download), before its config.json or command.txt is touched.

    Returns (config, local run dir, storage.RunMirror or None). A new run gets
    config.json and command.txt; an existing one takes the flags in `given` (name: value;
    all of `cfg`'s when None), which must agree with its saved settings but for
    schema.resumable's fields, keeps its saved values for the others, and gets the command
    appended. A gs:// run lives in a local staging copy, downloaded first when only the
    bucket has it.
    """
    new = not cfg.run or (
        not cfg.logdir.startswith("gs://")
        and not RunDir(os.path.join(cfg.logdir, cfg.run)).has_config()
    )
    cfg = _checked(cfg, settings=new)
    if check is not None and new:  # the flags are its settings: checked before any contact
        check(cfg)
        check = None
    local_root, mirror = _local_root(cfg)
    run = RunDir(os.path.join(local_root, cfg.run))
    try:
        _check_run_dir(run.path)
        try:
            cfg = _enter(cfg, given, command, run, mirror, check)
        except OSError as e:  # the run lock's flush, config.json, command.txt
            if is_disk_full(e):
                raise DiskFull(run.failure_message(e)) from None
            # Another user's file, a read-only file system: nothing this run can mend.
            raise UsageError(run.failure_message(e) or f"cannot write in {run.path}: {e}") from None
    except BaseException as e:
        if mirror is not None:
            _leave(mirror, e)
        raise
    return cfg, run.path, mirror


def _leave(mirror, error: BaseException) -> None:
    """A gs:// start that stops here leaves no lease behind in the bucket.

    A finished run first uploads what the bucket lacks (its last upload gave up), so
    that "already finished" holds there too. Storage failing is StorageDown.
    """
    from trainer import storage

    try:
        if isinstance(error, AlreadyFinished):
            sent = mirror.upload()
            if sent:
                print(f"Uploaded {sent} file(s) {mirror.url} lacked", file=sys.stderr, flush=True)
    except storage.FAILURES as e:
        raise StorageDown(
            f"the run is finished locally, but uploading it to {mirror.url} failed "
            f"({storage.describe(e)}); the next start tries again"
        ) from None
    finally:
        mirror.release_lease()
    if isinstance(error, storage.FAILURES):
        raise StorageDown(f"staging {mirror.url} failed: {storage.describe(error)}") from None


def _check_run_dir(run_dir: str) -> None:
    """UsageError unless `run_dir` is absent or a directory this process can write in.

    A dangling symlink, a file, or a directory of another user (or on a read-only
    file system) would otherwise fail later with a traceback.
    """
    if os.path.islink(run_dir) and not os.path.exists(run_dir):
        raise UsageError(
            f"run directory {run_dir} is a symlink to {os.readlink(run_dir)}, which does not "
            "exist; fix the link or choose another --run"
        )
    if not os.path.lexists(run_dir):
        return
    if not os.path.isdir(run_dir):
        raise UsageError(f"{run_dir} exists but is not a directory; choose another --run")
    try:
        with tempfile.TemporaryFile(dir=run_dir):
            pass
    except OSError as e:
        owner = f" (owned by uid {os.stat(run_dir).st_uid})" if e.errno == errno.EACCES else ""
        raise UsageError(
            f"cannot write to run directory {run_dir}: {e.strerror}{owner}; "
            "run as a user who may write there, or choose another --run"
        ) from None


def _enter(cfg: Config, given, command: str, run: RunDir, mirror, check=None) -> Config:
    """Locks the run, stages a gs:// run, checks a resume, writes config.json and command.txt.

    Returns the run's config: `cfg`, or on a resume the one `RunDir.resumed` makes.
    """
    run.lock()  # one writer per run (RunBusy, a UsageError)
    if mirror is not None and not run.has_config() and mirror.download():
        print(f"Downloaded {mirror.url} to {run.path}", file=sys.stderr, flush=True)
    if run.has_config():
        cfg = run.resumed(cfg, given)
    # A distributed run's Reverb server may have made reverb/ before the learner got here.
    elif os.path.exists(run.path) and set(os.listdir(run.path)) - {RunDir.REVERB}:
        raise UsageError(f"{run.path} exists but holds no config.json; choose another --run")
    else:  # new after all (a gs:// run the bucket did not have): its flags are its settings
        with errors.usage():
            checks.validate(cfg)
    if check is not None:
        check(cfg)
    if not run.has_config():  # written once: a resume never rewrites it
        run.save_config(cfg)
    run.log_command(command)
    return cfg


def _checked(cfg: Config, settings: bool) -> Config:
    """`cfg` with its run id, once the env (and with `settings`, every setting) is known
    good. A run that may exist is checked once its saved settings are merged
    (RunDir.resumed): the defaults of `--agent=sac` alone may not fit its total steps."""
    from trainer import envs

    if settings:
        with errors.usage():
            checks.validate(cfg)
    if not envs.is_registered(cfg.env_id):
        raise UsageError(
            f"unknown env id {cfg.env_id!r}; use KukaGrasp-v0, KukaBulletEnv-v0 or another "
            "pybullet gym id"
        )
    run_id = cfg.run or runs.make_run_id(cfg.agent, cfg.env_id)
    with errors.usage():
        runs.check_run_id(run_id)
        processes.check_env_count(cfg.num_envs)
        if cfg.env_id != envs.CAMERA_ENV_ID:  # its policy learns by DAgger (trainer/dagger.py)
            envs.check_spaces(cfg.env_id)
    return dataclasses.replace(cfg, run=run_id)


def _local_root(cfg: Config):
    """(writable local LOGDIR, RunMirror or None); a gs:// run's lease is taken last."""
    local_root, client = cfg.logdir, None
    if cfg.logdir.startswith("gs://"):
        client, local_root = gcs_root(cfg.logdir, cfg.staging_dir)
    try:
        os.makedirs(local_root, exist_ok=True)
        with tempfile.TemporaryFile(dir=local_root):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to log directory {local_root}: {e.strerror}") from None
    if client is None:
        return local_root, None
    from trainer import storage

    run_url = storage.join(cfg.logdir, cfg.run)
    mirror = storage.RunMirror(client, os.path.join(local_root, cfg.run), run_url)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
    try:  # one writer per run across machines, before anything is downloaded
        mirror.take_lease(holder)
    except storage.RunBusy as e:
        raise UsageError(f"run {cfg.run}: {e}") from None
    except storage.FAILURES as e:
        raise StorageDown(f"cannot take the lease of {run_url}: {storage.describe(e)}") from None
    return local_root, mirror


def fetch_for_render(client, remote: str, local_root: str, run: str) -> str:
    """Downloads the run's config and policy (and a camera run's settings) from gs://;
    returns the run id ('' if none)."""
    from trainer import storage

    try:
        run_id = run or storage.latest_run(client, remote) or ""
        if run_id:
            local = os.path.join(local_root, run_id)
            mirror = storage.RunMirror(client, local, storage.join(remote, run_id))
            if not mirror.download(only=RunDir.CONFIG):
                raise UsageError(f"no complete run at {mirror.url} (no {storage.MARKER})")
            mirror.download(only=RunDir.POLICY + "/")
            mirror.download(only=RunDir.VISION)  # a camera run's frame size
    except storage.StorageError as e:
        raise UsageError(str(e)) from None
    return run_id


def staging_root(logdir: str, staging_dir: str) -> str:
    """The local directory standing for LOGDIR: itself, or a gs:// LOGDIR's staging copy."""
    if not logdir.startswith("gs://"):
        return logdir
    if staging_dir:
        return staging_dir
    from trainer import storage

    with errors.usage():
        bucket, prefix = storage.parse_url(logdir)
    return os.path.join(tempfile.gettempdir(), "kuka-staging", bucket, prefix)
