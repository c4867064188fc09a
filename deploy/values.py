"""Values the Makefile needs from the trainer, with the standard library only.

    python3 -m deploy.values run-id [AGENT] [ENV_ID] [KIND]   a new run id (runs.make_run_id)
    python3 -m deploy.values default FIELD                    a default of trainer/config.py
    python3 -m deploy.values check-run RUN KIND               why RUN cannot name a KIND run
    python3 -m deploy.values kind KIND FIELD                  a fact of flavour KIND (kinds.py)

check-run prints the one-line reason (nothing when RUN fits) and exits 0, so that
the Makefile can stop with it through $(error) before it builds or contacts anything.

KIND (deploy/kinds.py) cuts the id to what that run kind allows: `tune` 30, since
Katib's Experiment name kuka-tune-RUN has at most 40 characters.

Cluster targets name their objects after the run id before .venv exists, and the
Makefile repeats no default of the trainer's.
"""

from __future__ import annotations

import sys

from deploy import kinds
from trainer import runs, schema
from trainer.config import Config

USAGE = (
    "usage: python3 -m deploy.values run-id [AGENT] [ENV_ID] [KIND] | default FIELD"
    " | check-run RUN KIND | kind KIND FIELD"
)
FACTS = ("api_resource", "pod_label", "prefix", "resource")


def _unknown(kind: str) -> str:
    return f"KIND {kind!r} is not one of {', '.join(sorted(kinds.KINDS))}"


def main(argv: list[str]) -> int:
    what, *rest = argv or [""]
    if what == "run-id" and len(rest) <= 3:
        agent, env_id, kind = [*rest, "", "", ""][:3]
        if kind and kind not in kinds.KINDS:
            print(f"values: error: {_unknown(kind)}", file=sys.stderr)
            return 2
        limit = kinds.max_run_length(kind) if kind else runs.MAX_LEN
        print(runs.make_run_id(agent or Config.agent, env_id or Config.env_id, max_len=limit))
        return 0
    if what == "check-run" and len(rest) == 2:
        if rest[1] not in kinds.KINDS:  # the reason, for the Makefile's $(error)
            print(_unknown(rest[1]))
            return 0
        try:
            kinds.check_run(*rest)
        except ValueError as e:
            print(e)
        return 0
    if what == "kind" and len(rest) == 2 and rest[1] in FACTS:
        if rest[0] not in kinds.KINDS:
            print(f"values: error: {_unknown(rest[0])}", file=sys.stderr)
            return 2
        value = getattr(kinds.KINDS[rest[0]], rest[1])
        if not value:  # the distributed roles: fixed names, their own targets
            print(
                f"values: error: KIND {rest[0]!r} is a distributed layout: make "
                "status-distributed, make delete-distributed",
                file=sys.stderr,
            )
            return 2
        print(value)
        return 0
    defaults = {f.name: f.default for f in schema.flag_fields(Config)}  # every agent's too
    if what == "default" and len(rest) == 1 and rest[0] in defaults:
        print(defaults[rest[0]])
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
