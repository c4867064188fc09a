"""Command line entry point: `python -m trainer.task [COMMAND] --help`.

`train` (the default) trains or resumes a run; `eval` evaluates a run again;
`render` films a policy; `plot` writes a run's learning curve. Distributed
training: `reverb`, `collect` and `learn` are its roles, one process each;
`distributed` runs them all on this machine.

The only module that reads flags or environment variables. Exit codes: 0 done,
1 training failed, 2 bad input (nothing written), 130 Ctrl-C and 143 SIGTERM (both
after saving a checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shlex
import signal
import socket
import sys
import tempfile
import time
import warnings

from absl import app, flags, logging

from trainer import cli_help, config, processes, runs
from trainer.config import Config, RenderConfig, RoleConfig

USAGE_ERROR = 2


class UsageError(Exception):
    """Bad input: reported in one line with exit code 2."""


class AlreadyFinished(Exception):
    """The run has trained to --total_steps already: said in one line, exit code 0."""


def _finished_at(run_dir: str) -> int | None:
    """The env step of the run's final evaluation (eval.json), if it has one."""
    try:
        with open(os.path.join(run_dir, "eval.json")) as f:
            return int(json.load(f)["env_steps"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


COMMANDS = ("train", "eval", "render", "plot", "reverb", "collect", "learn", "distributed")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per config field, its docstring as help and its default as default.

    Training and render settings share the flags they have in common (--logdir, --run ...).
    """
    classes = {Config: "train", RenderConfig: "render", RoleConfig: "roles"}
    docs: dict[str, dict[str, str]] = {}
    for cls, command in classes.items():
        for name, doc in config.field_docs(cls).items():
            docs.setdefault(name, {})[command] = doc
    for cls in classes:
        for field in dataclasses.fields(cls):
            if field.name not in flag_values:
                texts = docs[field.name]
                if len(set(texts.values())) == 1:
                    doc = next(iter(texts.values()))
                else:  # a shared flag whose meaning differs by command
                    doc = " ".join(f"{command}: {text}" for command, text in texts.items())
                _define(field, doc, flag_values)


def _define(field, doc: str, flag_values: flags.FlagValues) -> None:
    name, default = field.name, field.default
    if field.type == "str":
        flags.DEFINE_string(name, default, doc, flag_values=flag_values)
    elif field.type == "int":
        flags.DEFINE_integer(name, default, doc, flag_values=flag_values)
    elif field.type == "bool":
        flags.DEFINE_boolean(name, default, doc, flag_values=flag_values)
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
        bucket, _ = storage.parse_url(logdir)
        client = storage.make_client()
        storage.check_bucket(client, bucket)
    except (ValueError, storage.StorageError) as e:
        raise UsageError(str(e)) from None
    return client, _staging_root(logdir, staging_dir)


# Run locks (runs.lock_run) this process holds until it exits.
_HELD_LOCKS: list = []


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
        processes.check_env_count(cfg.num_envs)
        envs.check_spaces(cfg.env_id)
    except ValueError as e:
        raise UsageError(str(e)) from None
    cfg = dataclasses.replace(cfg, run=run_id)
    local_root, mirror = cfg.logdir, None
    if cfg.logdir.startswith("gs://"):
        from trainer import storage

        client, local_root = _gcs_root(cfg.logdir, cfg.staging_dir)
        run_url = storage.join(cfg.logdir, run_id)
        mirror = storage.RunMirror(client, os.path.join(local_root, run_id), run_url)
        holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": time.time()}
        try:  # one writer per run across machines, before anything is downloaded
            mirror.take_lease(holder)
        except storage.RunBusy as e:
            raise UsageError(f"run {run_id}: {e}") from None
    try:
        os.makedirs(local_root, exist_ok=True)
        with tempfile.TemporaryFile(dir=local_root):
            pass
    except OSError as e:
        raise UsageError(f"cannot write to log directory {local_root}: {e.strerror}") from None
    run_dir = os.path.join(local_root, run_id)
    try:  # one writer per run
        _HELD_LOCKS.append(runs.lock_run(local_root, run_id))
    except runs.RunBusy as e:
        raise UsageError(str(e)) from None
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
        finished = _finished_at(run_dir)
        if command != "eval" and finished is not None and finished >= cfg.total_steps:
            raise AlreadyFinished(
                f"Run {run_dir} already finished at step {finished:,} (eval.json); "
                f"raise --total_steps to train on, or `make eval RUN={run_id}` to evaluate again"
            )
    # A distributed run's Reverb server may have made reverb/ before the learner got here.
    elif os.path.exists(run_dir) and set(os.listdir(run_dir)) - {"reverb"}:
        raise UsageError(f"{run_dir} exists but holds no config.json; choose another --run")
    os.makedirs(run_dir, exist_ok=True)
    if not os.path.exists(config_path):  # written once: a resume never rewrites it
        config.save(cfg, config_path)
    commands, before = os.path.join(run_dir, "command.txt"), ""
    if os.path.exists(commands):
        with open(commands) as f:
            before = f.read()
    runs.write_atomic(commands, before + command + "\n")
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
    try:  # every command reads --logdir; nothing may be written before it is known good
        runs.check_logdir(flags.FLAGS.logdir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if command == "render":
        return render_main()
    if command == "plot":
        return plot_main()
    if command == "train":
        return train_main()
    if command == "eval":
        return eval_main()
    return role_main(command)


def plot_main() -> int:
    """Writes the run's learning_curve.png from its event files."""
    logdir, run = flags.FLAGS.logdir, flags.FLAGS.run
    run_dir = os.path.join(logdir, run) if run else runs.latest_run(logdir)
    if run and not os.path.isfile(os.path.join(run_dir, "config.json")):
        raise UsageError(runs.missing_run(logdir, run))
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
    except OSError as e:
        if not runs.is_disk_full(e):
            raise
        print(
            f"error: no space left on the disk of {plan.out_root}; nothing was written",
            file=sys.stderr,
        )
        return 1
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


def eval_main() -> int:
    """Evaluates a run's newest checkpoint again into eval-<step>.json, beside eval.json."""
    cfg = config_from_flags()
    if not cfg.run:
        raise UsageError("eval needs --run (the run to evaluate)")
    if cfg.logdir.startswith("gs://"):
        raise UsageError("eval reads a local run; render or train it from gs:// first")
    run_dir = os.path.join(cfg.logdir, cfg.run)
    if not os.path.exists(os.path.join(run_dir, "config.json")):
        raise UsageError(runs.missing_run(cfg.logdir, cfg.run))
    try:
        saved = config.load(os.path.join(run_dir, "config.json"))
    except ValueError as e:
        raise UsageError(str(e)) from None
    saved = dataclasses.replace(saved, eval_episodes=cfg.eval_episodes)
    _quiet_tensorflow()
    from trainer import evaluate, record

    try:
        path, result = record.evaluate_run(saved, run_dir)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(evaluate.describe(result), file=sys.stderr)
    print(f"Wrote {path}", file=sys.stderr)
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


def train_main(role: str = "train") -> int:
    """`train`, or with role "learn" the distributed learner: same run directory, same exits."""
    command = shlex.join([os.path.basename(sys.executable), "-m", "trainer.task", *sys.argv[1:]])
    cfg, run_dir, mirror = prepare_run(config_from_flags(), command)
    print(f"Run directory: {run_dir}", file=sys.stderr, flush=True)
    _stop_on_sigterm()
    _quiet_tensorflow()
    # TensorFlow loads only once the input is known good.
    from trainer import actors, record, train

    syncer, errors = None, (actors.ActorError, TimeoutError, record.CheckpointError)
    if mirror is not None:
        from trainer import storage

        syncer, errors = storage.Syncer(mirror), (*errors, storage.StorageError)
        print(f"Uploading to {mirror.url}", file=sys.stderr, flush=True)
    try:
        try:
            if role == "learn":
                from trainer import distributed

                roles = config_from_flags(RoleConfig)
                distributed.learn(
                    cfg, run_dir, roles.reverb_address, roles.data_timeout, syncer=syncer
                )
            else:
                train.train(cfg, run_dir, syncer=syncer)
        finally:
            if syncer is not None:
                syncer.close()
    except errors as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"Interrupted; the last checkpoint is in {run_dir}", file=sys.stderr)
        return 130
    except Exception as e:
        if not runs.is_disk_full(e):
            raise
        print(f"error: {runs.disk_full_message(run_dir)}", file=sys.stderr)
        return 1
    print(
        f"Done: policy in {os.path.join(run_dir, 'policy')}, evaluation in "
        f"{os.path.join(run_dir, 'eval.json')}",
        file=sys.stderr,
    )
    return 0


def _staging_root(logdir: str, staging_dir: str) -> str:
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


def _config_flags(cfg: Config) -> list[str]:
    """Flags that rebuild `cfg` in a child process."""
    out = []
    for field in dataclasses.fields(Config):
        value = getattr(cfg, field.name)
        if isinstance(value, bool):
            out.append(f"--{'' if value else 'no'}{field.name}")
        elif isinstance(value, tuple):
            out.append(f"--{field.name}={','.join(str(v) for v in value)}")
        else:
            out.append(f"--{field.name}={value}")
    return out


def role_main(command: str) -> int:
    """The distributed roles (`reverb`, `collect`, `learn`) and their local launcher."""
    cfg, roles = config_from_flags(), config_from_flags(RoleConfig)
    try:
        config.validate(cfg)
        config.validate_roles(roles)
        # On this machine: each collector's env processes, and the learner's eval env.
        here = {"distributed": roles.collectors * cfg.num_envs + 1, "collect": cfg.num_envs}
        processes.check_env_count(here.get(command, 1))
    except ValueError as e:
        raise UsageError(str(e)) from None
    if cfg.agent != "ppo":
        raise UsageError(f"distributed training runs --agent=ppo, not {cfg.agent}")
    if command == "distributed":
        from trainer import launch

        run_id = cfg.run or runs.make_run_id(cfg.agent, cfg.env_id)
        flags_ = _config_flags(dataclasses.replace(cfg, run=run_id))
        supervisor = launch.Supervisor(flags_, roles.collectors)
        try:
            return supervisor.run()
        except KeyboardInterrupt:
            print("Interrupted; all processes stopped", file=sys.stderr)
            return 130
    if not cfg.run:
        raise UsageError(
            f"{command} needs --run: every role of a distributed run names the same run"
        )
    if command == "learn":
        return train_main(role="learn")
    _stop_on_sigterm()
    _quiet_tensorflow()
    from trainer import actors, distributed

    try:
        if command == "reverb":
            distributed.serve(cfg, roles.port)
        else:
            distributed.collect(cfg, roles.reverb_address, roles.task)
    except (TimeoutError, actors.ActorError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    return 0


def _parse_flags(argv: list[str]) -> list[str]:
    if any(arg in ("-h", "--help", "-?", "--helpshort") for arg in argv[1:]):
        words = [arg for arg in argv[1:] if not arg.startswith("-")]
        command = words[0] if words and words[0] in COMMANDS else "train"
        print(cli_help.command_help(command, COMMANDS))
        sys.exit(0)
    try:
        return flags.FLAGS(argv)
    except flags.Error as e:
        print(f"error: {e} (see python -m trainer.task --help)", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def _main(argv: list[str]) -> None:
    try:
        sys.exit(main(argv))
    except AlreadyFinished as e:
        print(e, file=sys.stderr)
        sys.exit(0)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(USAGE_ERROR)


def run() -> None:
    define_flags()
    app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
