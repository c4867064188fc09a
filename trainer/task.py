"""Command line entry point: `python -m trainer.task [train|render|plot] --help`.

`train` (the default) trains or resumes a run; `render` films a policy; `plot`
writes a run's learning curve.

The only module that reads flags or environment variables. Exit codes: 0 done,
1 training failed, 2 bad input (nothing written), 143 stopped by SIGTERM after
saving a checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
import shlex
import signal
import sys
import tempfile
import warnings

from absl import app, flags, logging

from trainer import config, runs
from trainer.config import Config, RenderConfig

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input: reported in one line with exit code 2."""


COMMANDS = ("train", "render", "plot")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per config field, its docstring as help and its default as default.

    Training and render settings share the flags they have in common (--logdir, --run ...).
    """
    for cls in (Config, RenderConfig):
        docs = config.field_docs(cls)
        for field in dataclasses.fields(cls):
            if field.name not in flag_values:
                _define(field, docs[field.name], flag_values)


def _define(field, doc: str, flag_values: flags.FlagValues) -> None:
    name, default = field.name, field.default
    if field.type == "str":
        flags.DEFINE_string(name, default, doc, flag_values=flag_values)
    elif field.type == "int":
        flags.DEFINE_integer(name, default, doc, flag_values=flag_values)
    elif field.type == "float":
        flags.DEFINE_float(name, default, doc, flag_values=flag_values)
    elif field.type.startswith("tuple[int"):
        flags.DEFINE_list(name, [str(v) for v in default], doc, flag_values=flag_values)
    else:
        raise TypeError(f"no flag type for {name}: {field.type}")


def config_from_flags(cls=Config, flag_values: flags.FlagValues = flags.FLAGS):
    values = {}
    for field in dataclasses.fields(cls):
        value = flag_values[field.name].value
        if field.type.startswith("tuple[int"):
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise UsageError(
                    f"--{field.name} takes comma-separated integers, got {','.join(value)}"
                ) from None
        values[field.name] = value
    return cls(**values)


def _gcs_root(logdir: str, staging_dir: str):
    """(client, local staging root) for a gs:// LOGDIR whose bucket is usable."""
    from trainer import storage

    try:
        bucket, prefix = storage.parse_url(logdir)
        client = storage.make_client()
        storage.check_bucket(client, bucket)
    except (ValueError, storage.StorageError) as e:
        raise UsageError(str(e)) from None
    root = staging_dir or os.path.join(tempfile.gettempdir(), "kuka-staging", bucket, prefix)
    return client, root


def prepare_run(cfg: Config, command: str):
    """Checks everything about the run before any heavy work.

    Returns (config, local run dir, storage.RunMirror or None). A new run gets
    config.json and command.txt; an existing one must agree with the flags
    (outside config.RESUMABLE_FIELDS) and gets the command appended. A gs:// run
    lives in a local staging copy, downloaded first when only the bucket has it.
    """
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
    except ValueError as e:
        raise UsageError(str(e)) from None
    cfg = dataclasses.replace(cfg, run=run_id)
    local_root, mirror = cfg.logdir, None
    if cfg.logdir.startswith("gs://"):
        from trainer import storage

        client, local_root = _gcs_root(cfg.logdir, cfg.staging_dir)
        run_url = storage.join(cfg.logdir, run_id)
        mirror = storage.RunMirror(client, os.path.join(local_root, run_id), run_url)
    try:
        os.makedirs(local_root, exist_ok=True)
        with tempfile.TemporaryFile(dir=local_root):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to log directory {local_root}: {e.strerror}") from None
    run_dir = os.path.join(local_root, run_id)
    config_path = os.path.join(run_dir, "config.json")
    if mirror is not None and not os.path.exists(config_path) and mirror.download():
        print(f"Downloaded {mirror.url} to {run_dir}", file=sys.stderr, flush=True)
    if os.path.exists(config_path):
        try:
            saved = config.load(config_path)
        except ValueError as e:
            raise UsageError(f"{e}; fix it or start a new run with another --run") from None
        diffs = config.differences(saved, cfg)
        if diffs:
            raise UsageError(
                f"run {run_dir} exists with another config ({'; '.join(diffs)}); "
                "pass the same flags to resume it, or another --run"
            )
    elif os.path.exists(run_dir) and os.listdir(run_dir):
        raise UsageError(f"{run_dir} exists but holds no config.json; choose another --run")
    os.makedirs(run_dir, exist_ok=True)
    config.save(cfg, config_path)
    with open(os.path.join(run_dir, "command.txt"), "a") as f:
        f.write(command + "\n")
    return cfg, run_dir, mirror


def _quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up chatter (CUDA probes, tracing notes) off the progress lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore", message="Encoding a StructuredValue")
    # AutoGraph's rewrite of tf-agents' `state is not ()` checks.
    warnings.filterwarnings("ignore", message='"is not" with a literal', category=SyntaxWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="gym")


def _stop_on_sigterm() -> None:
    def handler(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str]) -> int:
    command, *rest = argv[1:] or ["train"]
    if command not in COMMANDS or rest:
        raise UsageError(
            f"unexpected arguments: {' '.join(argv[1:])}; the commands are {', '.join(COMMANDS)}"
        )
    if command == "render":
        return render_main()
    if command == "plot":
        return plot_main()
    return train_main()


def plot_main() -> int:
    """Writes the run's learning_curve.png from its event files."""
    logdir, run = flags.FLAGS.logdir, flags.FLAGS.run
    run_dir = os.path.join(logdir, run) if run else runs.latest_run(logdir)
    if run_dir is None or not os.path.isdir(os.path.join(run_dir, "train")):
        raise UsageError(f"no run with TensorBoard events at {run_dir or logdir}")
    _quiet_tensorflow()
    from trainer import plot  # reading event files loads TensorFlow

    try:
        path = plot.learning_curve(run_dir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(f"Wrote {path}", file=sys.stderr)
    return 0


def render_main() -> int:
    from trainer import render

    cfg = config_from_flags(RenderConfig)
    try:
        config.validate_render(cfg)
    except ValueError as e:
        raise UsageError(str(e)) from None
    remote = cfg.logdir if cfg.logdir.startswith("gs://") else None
    if remote:
        client, local_root = _gcs_root(remote, cfg.staging_dir)
        run_id = _fetch_for_render(client, remote, local_root, cfg.run)
        cfg = dataclasses.replace(cfg, logdir=local_root, run=run_id)
    try:
        plan = render.plan(cfg)
    except render.RenderError as e:
        raise UsageError(str(e)) from None
    print(f"Filming {plan.policy} on {plan.env_id} ...", file=sys.stderr, flush=True)
    _quiet_tensorflow()
    try:
        out_dir = render.render(cfg, plan)
    except render.RenderError as e:
        raise UsageError(str(e)) from None
    print(f"Done: {out_dir}/video.mp4, video.gif, preview.png, render.json", file=sys.stderr)
    if remote:
        from trainer import storage

        run_url = storage.join(remote, os.path.basename(plan.out_root))
        mirror = storage.RunMirror(client, plan.out_root, run_url)
        try:
            mirror.upload(only=os.path.relpath(out_dir, plan.out_root))
        except storage.StorageError as e:
            print(f"error: {e}", file=sys.stderr)
            return 1
        print(
            f"Uploaded to {storage.join(run_url, 'render', os.path.basename(out_dir))}",
            file=sys.stderr,
        )
    return 0


def _fetch_for_render(client, remote: str, local_root: str, run: str) -> str:
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


def train_main() -> int:
    command = shlex.join([os.path.basename(sys.executable), "-m", "trainer.task", *sys.argv[1:]])
    cfg, run_dir, mirror = prepare_run(config_from_flags(), command)
    print(f"Run directory: {run_dir}", file=sys.stderr, flush=True)
    _stop_on_sigterm()
    _quiet_tensorflow()
    from trainer import actors, train  # TensorFlow loads only once the input is known good

    syncer, storage_errors = None, ()
    if mirror is not None:
        from trainer import storage

        syncer, storage_errors = storage.Syncer(mirror), (storage.StorageError,)
        print(f"Uploading to {mirror.url}", file=sys.stderr, flush=True)
    try:
        try:
            train.train(cfg, run_dir, syncer=syncer)
        finally:
            if syncer is not None:
                syncer.close()
    except (actors.ActorError, *storage_errors) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"Interrupted; the last checkpoint is in {run_dir}", file=sys.stderr)
        return 130
    print(
        f"Done: policy in {os.path.join(run_dir, 'policy')}, evaluation in "
        f"{os.path.join(run_dir, 'eval.json')}",
        file=sys.stderr,
    )
    return 0


def _parse_flags(argv: list[str]) -> list[str]:
    if any(arg in ("-h", "--help", "-?", "--helpshort") for arg in argv[1:]):
        app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)  # absl's own exits 1
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e} (see python -m trainer.task --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def _main(argv: list[str]) -> None:
    try:
        sys.exit(main(argv))
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def run() -> None:
    define_flags()
    app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
