"""The resume rules: what a resumed run takes from its saved settings, what from the flags.

A field the flags do not give keeps the run's saved value, so a default changed since
the run began (or one only another algorithm reads) does not stop it; a given field
must agree with the saved one unless it is resumable. Both `config.json` (Config,
rundir.py) and a camera run's `vision.json` (VisionConfig, dagger.py) follow them.
"""

from __future__ import annotations

import dataclasses

from trainer import config

# Where the run is now, which its saved config cannot know (a moved or staged run).
LOCATION_FIELDS = ("logdir", "staging_dir", "run")


def merged(saved, wanted, given: frozenset[str] | None, keep=()):
    """`saved` with `wanted`'s values for the fields named in `given` (every field when
    None; `given` may name fields of other settings) and in `keep`."""
    names = {f.name for f in dataclasses.fields(saved)}
    taken = (names & set(given) if given is not None else names) | set(keep)
    return dataclasses.replace(saved, **{name: getattr(wanted, name) for name in taken})


def differences(saved, wanted) -> list[str]:
    """The fields where `wanted` differs from `saved` that a resumed run may not change
    (config.resumable: the fields marked so), one phrase each."""
    resumable = config.resumable(type(saved))
    return [
        f"{f.name}: run has {getattr(saved, f.name)!r}, flags say {getattr(wanted, f.name)!r}"
        for f in dataclasses.fields(saved)
        if f.name not in resumable and getattr(saved, f.name) != getattr(wanted, f.name)
    ]
