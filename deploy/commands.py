"""Running gcloud and kubectl: each command is echoed, and with dry_run only echoed."""

from __future__ import annotations

import shlex
import subprocess
import sys


class Failed(Exception):
    """A step cannot go on; the message is the one line the user sees."""


def fail(prog: str, message: str) -> int:
    print(f"{prog}: error: {message}", file=sys.stderr)
    return 2


def run(argv: list[str], dry_run: bool, stdin: str | None = None, echo: bool = True) -> None:
    """Runs argv (printed first, as the user could paste it); Failed if it fails."""
    if echo:
        print(("" if dry_run else "+ ") + shlex.join(argv), flush=True)
    if dry_run:
        return
    result = subprocess.run(argv, input=stdin, text=True)
    if result.returncode != 0:
        raise Failed(
            f"{argv[0]} {argv[1]} failed with exit {result.returncode}: {shlex.join(argv)}"
        )


def query(argv: list[str]) -> tuple[int, str]:
    """(exit code, stdout) of a read-only command; stderr is passed through."""
    result = subprocess.run(argv, capture_output=True, text=True)
    return result.returncode, result.stdout.strip()
