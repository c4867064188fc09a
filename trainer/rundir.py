"""The run directory a command works in: checked, locked, and for gs:// runs staged.

Everything here happens before any heavy work, and a refusal (UsageError) leaves
nothing behind: a local run lives in LOGDIR/RUN; a gs:// run in a local staging
copy, downloaded first when only the bucket has it, and uploaded by storage.Syncer.
"""

from __future__ import annotations

import dataclasses
import json
import os
import socket
import sys
import tempfile
import time

from trainer import config, processes, runs
from trainer.config import Config


class UsageError(Exception):
    """Bad input: reported in one line with exit code 2."""


class AlreadyFinished(Exception):
    """The run has trained to --total_steps already: said in one line, exit code 0."""


def finished_at(run_dir: str) -> int | None:
    """The env step of the run's final evaluation (eval.json), if it has one."""
    try:
        with open(os.path.join(run_dir, "eval.json")) as f:
            return int(json.load(f)["env_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def gcs_root(logdir: str, staging_dir: str):
    """(client, local staging root) for a gs:// LOGDIR whose bucket is usable."""
    from trainer import storage

    try:
        bucket, _ = storage.parse_url(logdir)
        client = storage.make_client()
        storage.check_bucket(client, bucket)
    except (ValueError, storage.StorageError) as e:
        raise UsageError(str(e)) from None
    return client, staging_root(logdir, staging_dir)


# Fields a resumed run may change; any other difference from the run's config.json
# is refused, since the checkpoint would not match what the flags ask for.
RESUMABLE_FIELDS = frozenset(
    {
        "total_steps",
        "overlap",
        "deterministic",
        "logdir",
        "staging_dir",
        "checkpoint_interval",
        "eval_interval",
        "eval_episodes",
    }
)


def differences(saved: Config, wanted: Config) -> list[str]:
    """Fields (outside RESUMABLE_FIELDS) where a resumed run's flags differ."""
    return [
        f"{f.name}: run has {getattr(saved, f.name)!r}, flags say {getattr(wanted, f.name)!r}"
        for f in dataclasses.fields(Config)
        if f.name not in RESUMABLE_FIELDS and getattr(saved, f.name) != getattr(wanted, f.name)
    ]


def prepare(cfg: Config, command: str):
    """Checks everything about the run before any heavy work.

    Returns (config, local run dir, storage.RunMirror or None). A new run gets
    config.json and command.txt; an existing one must agree with the flags
    (outside RESUMABLE_FIELDS) and gets the command appended. A gs:// run
    lives in a local staging copy, downloaded first when only the bucket has it.
    """
    cfg = _checked(cfg)
    local_root, mirror = _local_root(cfg)
    run_dir = os.path.join(local_root, cfg.run)
    try:  # one writer per run
        runs.lock_run(local_root, cfg.run)
    except runs.RunBusy as e:
        raise UsageError(str(e)) from None
    config_path = os.path.join(run_dir, "config.json")
    if mirror is not None and not os.path.exists(config_path) and mirror.download():
        print(f"Downloaded {mirror.url} to {run_dir}", file=sys.stderr, flush=True)
    if os.path.exists(config_path):
        _check_resumable(cfg, run_dir)
    # A distributed run's Reverb server may have made reverb/ before the learner got here.
    elif os.path.exists(run_dir) and set(os.listdir(run_dir)) - {"reverb"}:
        raise UsageError(f"{run_dir} exists but holds no config.json; choose another --run")
    os.makedirs(run_dir, exist_ok=True)
    if not os.path.exists(config_path):  # written once: a resume never rewrites it
        runs.save_config(cfg, config_path)
    commands, before = os.path.join(run_dir, "command.txt"), ""
    if os.path.exists(commands):
        with open(commands) as f:
            before = f.read()
    runs.write_atomic(commands, before + command + "\n")
    return cfg, run_dir, mirror


def _checked(cfg: Config) -> Config:
    """`cfg` with its run id, once every setting and the env are known good."""
    from trainer import envs

    try:
        config.validate(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if not envs.is_registered(cfg.env_id):
        raise UsageError(
            f"unknown env id {cfg.env_id!r}; use KukaGrasp-v0, KukaBulletEnv-v0 or another "
            "pybullet gym id"
        )
    run_id = cfg.run or runs.make_run_id(cfg.agent, cfg.env_id)
    try:
        runs.check_run_id(run_id)
        processes.check_env_count(cfg.num_envs)
        envs.check_spaces(cfg.env_id)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return dataclasses.replace(cfg, run=run_id)


def _local_root(cfg: Config):
    """(writable local LOGDIR, RunMirror or None); a gs:// run's lease is taken first."""
    local_root, mirror = cfg.logdir, None
    if cfg.logdir.startswith("gs://"):
        from trainer import storage

        client, local_root = gcs_root(cfg.logdir, cfg.staging_dir)
        run_url = storage.join(cfg.logdir, cfg.run)
        mirror = storage.RunMirror(client, os.path.join(local_root, cfg.run), run_url)
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        try:  # one writer per run across machines, before anything is downloaded
            mirror.take_lease(holder)
        except storage.RunBusy as e:
            raise UsageError(f"run {cfg.run}: {e}") from None
    try:
        os.makedirs(local_root, exist_ok=True)
        with tempfile.TemporaryFile(dir=local_root):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to log directory {local_root}: {e.strerror}") from None
    return local_root, mirror


def _check_resumable(cfg: Config, run_dir: str) -> None:
    """UsageError unless the run's config.json agrees with `cfg`; AlreadyFinished if done."""
    try:
        saved = runs.load_config(os.path.join(run_dir, "config.json"))
    except ValueError as e:
        raise UsageError(f"{e}; fix it or start a new run with another --run") from None
    diffs = differences(saved, cfg)
    if diffs:
        raise UsageError(
            f"run {run_dir} exists with another config ({'; '.join(diffs)}); "
            "pass the same flags to resume it, or another --run"
        )
    finished = finished_at(run_dir)
    if finished is not None and finished >= cfg.total_steps:
        raise AlreadyFinished(
            f"Run {run_dir} already finished at step {finished:,} (eval.json); "
            f"raise --total_steps to train on, or `make eval RUN={cfg.run}` to evaluate again"
        )


def fetch_for_render(client, remote: str, local_root: str, run: str) -> str:
    """Downloads the run's config and policy from gs://; returns the run id ('' if none)."""
    from trainer import storage

    try:
        run_id = run or storage.latest_run(client, remote) or ""
        if run_id:
            local = os.path.join(local_root, run_id)
            mirror = storage.RunMirror(client, local, storage.join(remote, run_id))
            if not mirror.download(only="config.json"):
                raise UsageError(f"no complete run at {mirror.url} (no {storage.MARKER})")
            mirror.download(only="policy/")
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

    try:
        bucket, prefix = storage.parse_url(logdir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    return os.path.join(tempfile.gettempdir(), "kuka-staging", bucket, prefix)
