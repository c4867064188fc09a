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

import os
import shlex
import signal
import sys
import warnings

from absl import app, flags, logging

from trainer import cli_help, commands, config, errors, runs, schema
from trainer.config import Config, RenderConfig, RoleConfig, VisionConfig
from trainer.errors import TrainerError, UsageError

COMMANDS = ("train", "eval", "render", "plot", "reverb", "collect", "learn", "distributed")


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """One flag per field of the config classes, its docstring entry as help, its default."""
    for cls in (Config, VisionConfig, RenderConfig, RoleConfig):
        docs = schema.field_docs(cls)
        for field in schema.flag_fields(cls):
            _define(field, docs[field.name], flag_values)


# absl's flag definer for each field type of the config classes (tuples are lists).
_DEFINE = {
    "str": flags.DEFINE_string,
    "int": flags.DEFINE_integer,
    "bool": flags.DEFINE_boolean,
    "float": flags.DEFINE_float,
}


def _define(field, doc: str, flag_values: flags.FlagValues) -> None:
    if field.type.startswith("tuple[int"):
        default = [str(v) for v in field.default]
        flags.DEFINE_list(field.name, default, doc, flag_values=flag_values)
    else:
        _DEFINE[field.type](field.name, field.default, doc, flag_values=flag_values)


def _parsed(cls, given_only: bool, flag_values: flags.FlagValues = flags.FLAGS) -> dict:
    """The values of `cls`'s flags (schema.flag_fields), or only of those given."""
    values = {}
    for field in schema.flag_fields(cls):
        flag = flag_values[field.name]
        if given_only and not flag.present:
            continue
        value = flag.value
        if field.type.startswith("tuple[int"):
            try:
                value = tuple(int(v) for v in value)
            except ValueError:
                raise UsageError(
                    f"--{field.name} takes comma-separated integers, got {','.join(value)}"
                ) from None
        values[field.name] = value
    return values


def config_from_flags(cls=Config, flag_values: flags.FlagValues = flags.FLAGS):
    """The `cls` the flags ask for; a Config takes its agent's defaults for the flags not
    given on the command line, and leaves out another agent's settings (a run refuses
    them once its own agent is known: commands.py)."""
    if cls is not Config:
        return cls(**_parsed(cls, False, flag_values))
    values = _parsed(cls, True, flag_values)
    agent = values.get("agent", Config.agent)
    return config.for_agent(**{name: v for name, v in values.items() if schema.reads(agent, name)})


def _quiet_tensorflow() -> None:
    """Keeps TensorFlow's start-up chatter (CUDA probes, tracing notes) off the progress lines."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    logging.set_verbosity(logging.ERROR)
    warnings.filterwarnings("ignore", message="Encoding a StructuredValue")
    # AutoGraph's rewrite of tf-agents' `state is ()` and `state is not ()` checks.
    warnings.filterwarnings("ignore", message='"is( not)?" with a literal', category=SyntaxWarning)
    warnings.filterwarnings("ignore", category=UserWarning, module="gym")


# The signals that came, for _main: a SystemExit raised while pybind11 turns one of
# TensorFlow's C++ errors into a Python one (as every trace does, asking each op for an
# attribute it lacks) leaves as a RuntimeError; saves hold signals instead
# (processes.signals_held).
_TERMINATED: list[int] = []


def _stop_on_sigterm() -> None:
    def handler(signum, frame):
        _TERMINATED.append(signum)
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def main(argv: list[str]) -> int:
    command, *rest = argv[1:] or ["train"]
    if command not in COMMANDS or rest:
        raise UsageError(
            f"unexpected arguments: {' '.join(argv[1:])}; the commands are {', '.join(COMMANDS)}"
        )
    every = (Config, VisionConfig, RenderConfig, RoleConfig)
    given = [
        f.name for cls in every for f in schema.flag_fields(cls) if flags.FLAGS[f.name].present
    ]
    with errors.usage():  # every command reads --logdir; nothing is written before it is good
        cli_help.check_flags(command, given)
        runs.check_logdir(flags.FLAGS.logdir)
    cfg = config_from_flags()
    _quiet_tensorflow()
    if command == "render":
        return commands.render(cfg, config_from_flags(RenderConfig))
    if command == "plot":
        return commands.plot(cfg.logdir, cfg.run)
    if command == "eval":
        return commands.evaluate(cfg)
    _stop_on_sigterm()
    command_line = shlex.join(
        [os.path.basename(sys.executable), "-m", "trainer.task", *sys.argv[1:]]
    )
    if command == "train":
        # The flags given, with their values: a resumed run takes these over its saved ones.
        values = {**_parsed(Config, True), **_parsed(VisionConfig, True)}
        vision = config_from_flags(VisionConfig)
        return commands.train(cfg, command_line, given=values, vision=vision)
    roles = config_from_flags(RoleConfig)
    return commands.role(command, cfg, roles, command_line, frozenset(given))


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
        sys.exit(UsageError.exit_code)


def _main(argv: list[str]) -> None:
    try:
        sys.exit(main(argv))
    except TrainerError as e:  # the one place an error becomes a line and an exit code
        print(f"{e.prefix}{e}", file=sys.stderr)
        sys.exit(e.exit_code)
    except Exception as e:
        if not _TERMINATED:
            raise
        print(f"Stopped by SIGTERM (it surfaced as {type(e).__name__})", file=sys.stderr)
        sys.exit(128 + _TERMINATED[0])


def run() -> None:
    define_flags()
    app.run(_main, flags_parser=_parse_flags)


if __name__ == "__main__":
    run()
