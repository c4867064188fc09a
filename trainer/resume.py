"""The resume rules: what a resumed run takes from its saved settings, what from the flags.

A field the flags do not give keeps the run's saved value, so a default changed since
the run began (or one only another algorithm reads) does not stop it; a given field
must agree with the saved one unless it is resumable. Both `config.json` (Config,
rundir.py) and a camera run's `vision.json` (VisionConfig, dagger.py) follow them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from trainer import schema

# Where the run is now, which its saved config cannot know (a moved or staged run).
LOCATION_FIELDS = ("logdir", "staging_dir", "run")


def merged(saved, wanted, given: Mapping[str, Any] | None, keep=()):
    """`saved` with the flags in `given` (name: value; may name other settings' flags, or
    another agent's, which `saved` does not hold) and `wanted`'s values for `keep`; with
    `given` None, `wanted` itself."""
    if given is None:
        return wanted
    names = set(schema.flat(saved))
    values = {name: value for name, value in given.items() if name in names}
    values.update({name: getattr(wanted, name) for name in keep})
    return schema.replace(saved, **values)


def differences(saved, wanted) -> list[str]:
    """The flags where `wanted` differs from `saved` that a resumed run may not change
    (schema.resumable: the fields marked so), one phrase each; another agent's settings
    are not compared (the agent differs then, which is named)."""
    resumable = schema.resumable(type(saved))
    now = schema.flat(wanted)
    return [
        f"{name}: run has {value!r}, flags say {now[name]!r}"
        for name, value in schema.flat(saved).items()
        if name not in resumable and name in now and value != now[name]
    ]
