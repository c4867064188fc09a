"""Values the Makefile needs from the trainer, with the standard library only.

    python3 -m deploy.values run-id [AGENT] [ENV_ID]   a new run id (runs.make_run_id)
    python3 -m deploy.values default FIELD             a default of trainer/config.py

Cluster targets name their objects after the run id before .venv exists, and the
Makefile repeats no default of the trainer's.
"""

from __future__ import annotations

import sys

from trainer import runs
from trainer.config import Config

USAGE = "usage: python3 -m deploy.values run-id [AGENT] [ENV_ID] | default FIELD"


def main(argv: list[str]) -> int:
    what, *rest = argv or [""]
    if what == "run-id" and len(rest) <= 2:
        agent, env_id = [*rest, "", ""][:2]
        print(runs.make_run_id(agent or Config.agent, env_id or Config.env_id))
        return 0
    if what == "default" and len(rest) == 1 and rest[0] in Config.__dataclass_fields__:
        print(getattr(Config, rest[0]))
        return 0
    print(USAGE, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
