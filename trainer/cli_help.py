"""Per-command help: what a command does and its own flags, from the config dataclasses."""

from __future__ import annotations

import dataclasses
import textwrap

from absl import flags

from trainer import config
from trainer.config import Config, RenderConfig, RoleConfig

# What each command does, and the settings it reads (a dataclass, or some of Config's
# fields with the help text of those whose meaning differs).
_LATEST = "Run id; empty takes the most recent run under LOGDIR."
HELP = {
    "train": ("Train a run, or resume it from its last checkpoint (the default command).", Config),
    "eval": (
        "Evaluate a run's newest checkpoint again into eval-<step>.json.",
        {"logdir": None, "run": "The run to evaluate (required).", "eval_episodes": None},
    ),
    "render": ("Film a policy: video.mp4, video.gif, preview.png, render.json.", RenderConfig),
    "plot": (
        "Write a run's learning_curve.png from its event files.",
        {"logdir": None, "run": _LATEST},
    ),
    "reverb": ("Distributed role: the Reverb server between collectors and learner.", RoleConfig),
    "collect": ("Distributed role: one collector process.", RoleConfig),
    "learn": ("Distributed role: the learner (the training flags apply).", RoleConfig),
    "distributed": ("Server, learner and collectors on this machine.", RoleConfig),
}


def command_help(command: str, commands) -> str:
    """The help of one command: what it does and its own flags, each with default and text."""
    summary, fields = HELP[command]
    docs = dict(config.field_docs(Config))
    if isinstance(fields, dict):
        names = list(fields)
        docs.update({name: doc for name, doc in fields.items() if doc})
    else:
        docs.update(config.field_docs(fields))
        names = [f.name for f in dataclasses.fields(fields)]
    lines = [
        f"usage: python -m trainer.task {command} [--flag=value ...]",
        "",
        summary,
        "",
        f"flags of {command}:",
    ]
    for name in names:
        flag = flags.FLAGS[name]
        default = (
            ",".join(map(str, flag.default)) if isinstance(flag.default, list) else flag.default
        )
        shown = f"[no]{name}" if isinstance(flag.default, bool) else name
        lines.append(f"  --{shown}  (default: {default!r})")
        lines += textwrap.wrap(docs[name], 88, initial_indent=" " * 6, subsequent_indent=" " * 6)
    if command not in ("train", "eval", "render", "plot"):
        lines += ["", "The training flags apply too: python -m trainer.task train --help."]
    others = ", ".join(c for c in commands if c != command)
    lines += ["", f"Other commands: {others} (python -m trainer.task COMMAND --help)."]
    return "\n".join(lines)
