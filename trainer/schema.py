"""The settings as flags and config.json see them: one name space over a Config and its
agent's own settings (Config.algo), and over the other classes of config.py.

Flags go by field name, and an algorithm's settings are flags like the others: these
functions find a flag's field, its help, its value, and which agents read it.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

from trainer.config import ALGORITHM_SETTINGS, LEGACY, Config, PPOConfig


def resumable(cls: type) -> frozenset[str]:
    """The fields of `cls` that a resumed run may change."""
    return frozenset(f.name for f in dataclasses.fields(cls) if f.metadata.get("resumable"))


def owners(cls: type) -> dict[str, tuple[str, ...]]:
    """Each flag of `cls` that is an algorithm's own setting, and the agents that read it
    (two agents may share one settings class)."""
    out: dict[str, tuple[str, ...]] = {}
    for agent, own in ALGORITHM_SETTINGS.items() if cls is Config else ():
        for field in dataclasses.fields(own):
            out[field.name] = (*out.get(field.name, ()), agent)
    return out


def reads(agent: str, name: str) -> bool:
    """Whether a run of `agent` reads flag `name`: every shared one, and its own settings."""
    return agent in owners(Config).get(name, (agent,))


def flag_fields(cls: type) -> list[dataclasses.Field]:
    """The fields of `cls` as flags: a Config's `algo` stands for every algorithm's own."""
    out = []
    for field in dataclasses.fields(cls):
        if cls is Config and field.name == "algo":
            classes = dict.fromkeys(ALGORITHM_SETTINGS.values())  # each once, in order
            out += [f for own in classes for f in dataclasses.fields(own)]
        else:
            out.append(field)
    return out


def flat(cfg) -> dict[str, Any]:
    """Every flag name `cfg` holds, with its value (a Config's agent's settings from `algo`)."""
    out = {f.name: getattr(cfg, f.name) for f in dataclasses.fields(cfg) if f.name != "algo"}
    algo = getattr(cfg, "algo", None)
    if algo is not None:
        out.update({f.name: getattr(algo, f.name) for f in dataclasses.fields(algo)})
    return out


def replace(cfg, **values):
    """`cfg` with flags changed by name; TypeError for one it does not hold."""
    algo = getattr(cfg, "algo", None)
    if algo is not None:
        own = {name: values.pop(name) for name in list(values) if name in algo.__dataclass_fields__}
        values["algo"] = dataclasses.replace(algo, **own)
    return dataclasses.replace(cfg, **values)


@functools.cache
def field_docs(cls: type = Config) -> dict[str, str]:
    """Each field's help: its entry under `Attributes:` in the class's docstring."""
    import docstring_parser

    docs = {
        param.arg_name: " ".join(param.description.split())
        for param in docstring_parser.parse(cls.__doc__ or "").params
    }
    if cls is not Config:
        return {field.name: docs.get(field.name, "") for field in dataclasses.fields(cls)}
    out = {}
    for field in dataclasses.fields(cls):
        if field.name != "algo":
            out[field.name] = docs.get(field.name, "")
            continue
        readers = owners(Config)
        for own in dict.fromkeys(ALGORITHM_SETTINGS.values()):  # the agents begin its help
            out.update(
                {
                    name: f"{', '.join(readers[name])}: {doc}"
                    for name, doc in field_docs(own).items()
                }
            )
    return out


def to_dict(cfg: Config) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def from_dict(data: dict[str, Any]) -> Config:
    """Builds a Config from `to_dict` output (tuples come back from JSON lists).

    A field the saved run predates takes LEGACY's value, what runs did before it existed.
    A run saved before the algorithms' settings were their own classes kept every one of
    them flat beside the others: its agent's move into `algo`, another agent's are dropped.
    """
    values = {name: tuple(v) if isinstance(v, list) else v for name, v in data.items()}
    agent = values.get("agent", Config.agent)
    own = ALGORITHM_SETTINGS.get(agent, PPOConfig)
    if "algo" not in values:
        if agent == "sac" and "reward_scale" not in values:
            values["reward_scale"] = 0.001  # SAC's own scale before the field was written
        mine = {n: values[n] for n in own.__dataclass_fields__ if n in values}
        values = {n: v for n, v in values.items() if n not in owners(Config)}
        values["algo"] = mine
    unknown = sorted(set(values) - set(Config.__dataclass_fields__))
    if unknown:
        raise ValueError(f"unknown config fields: {', '.join(unknown)}")
    try:
        algo = own(**{**_legacy(own), **values.pop("algo")})
    except TypeError as e:
        raise ValueError(f"unknown {agent} settings in config.json: {e}") from None
    return Config(**{**_legacy(Config), **values, "algo": algo})


def _legacy(cls: type) -> dict[str, Any]:
    """LEGACY's values of `cls`'s own fields."""
    return {n: v for n, v in LEGACY.items() if n in cls.__dataclass_fields__}
