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
import os
import shlex
import signal
import sys
import warnings

from absl import app, flags, logging

from trainer import cli_help, config, processes, rundir, runs
from trainer.config import Config, RenderConfig, RoleConfig
from trainer.rundir import AlreadyFinished, UsageError

USAGE_ERROR = 2


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
        client, local_root = rundir.gcs_root(remote, cfg.staging_dir)
        run_id = rundir.fetch_for_render(client, remote, local_root, cfg.run)
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


def train_main(role: str = "train") -> int:
    """`train`, or with role "learn" the distributed learner: same run directory, same exits."""
    command = shlex.join([os.path.basename(sys.executable), "-m", "trainer.task", *sys.argv[1:]])
    cfg, run_dir, mirror = rundir.prepare(config_from_flags(), command)
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
