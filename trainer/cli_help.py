"""Per-command flags: what a command does and the flags it reads, from the config
dataclasses; its --help and the refusal of any other flag both read HELP."""

from __future__ import annotations

import dataclasses
import textwrap

from absl import flags

from trainer import config, schema
from trainer.config import Config, RenderConfig, RoleConfig, VisionConfig

# What each command does, and the settings it reads (a dataclass, or some fields by name
# with the help text of those whose meaning differs from the training flag's).
_LATEST = "Run id; empty takes the most recent run under LOGDIR."
_RENDER = {
    "logdir": None,
    "staging_dir": "Local copy of a gs:// run's LOGDIR; empty: a folder under the system's "
    "temp directory.",
    "run": _LATEST,
    "env_id": "Gym id of the env to film when there is no run (random policy); a run uses its own.",
    "seed": "Random seed for block placement (and random actions).",
    **dict.fromkeys(f.name for f in dataclasses.fields(RenderConfig)),
}
HELP = {
    "train": (
        "Train a run, or resume it from its last checkpoint (the default command); "
        "--env_id=KukaGraspCam-v0 teaches a camera policy (the KukaGraspCam-v0 flags).",
        (Config, VisionConfig),
    ),
    "eval": (
        "Evaluate a run's newest checkpoint again into eval-<step>.json.",
        {"logdir": None, "run": "The run to evaluate (required).", "eval_episodes": None},
    ),
    "render": ("Film a policy: video.mp4, video.gif, preview.png, render.json.", _RENDER),
    "plot": (
        "Write a run's learning_curve.png from its event files.",
        {"logdir": None, "run": _LATEST},
    ),
    "reverb": ("Distributed role: the Reverb server between collectors and learner.", RoleConfig),
    "collect": ("Distributed role: one collector process.", RoleConfig),
    "learn": ("Distributed role: the learner (the training flags apply).", RoleConfig),
    "distributed": ("Server, learner and collectors on this machine.", RoleConfig),
}


# Commands that read the training flags as well as their own (their --help says so).
TRAINING_TOO = ("reverb", "collect", "learn", "distributed")


def _own(command: str) -> list[str]:
    """The flags `command`'s help lists, in order."""
    fields = HELP[command][1]
    if isinstance(fields, dict):
        return list(fields)
    classes = fields if isinstance(fields, tuple) else (fields,)
    return [f.name for cls in classes for f in schema.flag_fields(cls)]


def takes(command: str) -> frozenset[str]:
    """Every flag `command` reads: its own, and the training ones for the distributed roles."""
    training = (f.name for f in schema.flag_fields(Config)) if command in TRAINING_TOO else ()
    return frozenset((*_own(command), *training))


def check_flags(command: str, given) -> None:
    """ValueError, in one line, naming the first flag in `given` that `command` does not
    read, and the commands that do: a flag accepted and ignored would mislead."""
    for name in given:
        if name not in takes(command):
            others = ", ".join(c for c in HELP if name in takes(c))
            raise ValueError(f"{command} does not take --{name} (a flag of {others})")


def _shown(value) -> str:
    return repr(",".join(map(str, value)) if isinstance(value, tuple) else value)


def command_help(command: str, commands) -> str:
    """The help of one command: what it does and its own flags, each with default and text."""
    summary, fields = HELP[command]
    docs = {
        name: doc
        for cls in (Config, VisionConfig, RenderConfig, RoleConfig)
        for name, doc in schema.field_docs(cls).items()
    }
    if isinstance(fields, dict):
        docs.update({name: doc for name, doc in fields.items() if doc})
    names = _own(command)
    # Only `train` resumes a run from its flags (the distributed roles list none of these).
    resumable_fields = schema.resumable(Config) | schema.resumable(VisionConfig)
    resumable_fields = resumable_fields if command == "train" else frozenset()
    lines = [
        f"usage: python -m trainer.task {command} [--flag=value ...]",
        "",
        summary,
        "",
        f"flags of {command}:",
    ]
    for name in names:
        flag = flags.FLAGS[name]
        default = _shown(tuple(flag.default) if isinstance(flag.default, list) else flag.default)
        shown = f"[no]{name}" if isinstance(flag.default, bool) else name
        per_agent = "".join(
            f"; {agent}: {_shown(values[name])}"
            for agent, values in config.AGENT_DEFAULTS.items()
            if name in values
        )
        resumable = "; a resumed run may change it" if name in resumable_fields else ""
        lines.append(f"  --{shown}  (default: {default}{per_agent}{resumable})")
        lines += textwrap.wrap(docs[name], 88, initial_indent=" " * 6, subsequent_indent=" " * 6)
    if command in TRAINING_TOO:
        lines += ["", "The training flags apply too: python -m trainer.task train --help."]
    others = ", ".join(c for c in commands if c != command)
    lines += ["", f"Other commands: {others} (python -m trainer.task COMMAND --help)."]
    return "\n".join(lines)
