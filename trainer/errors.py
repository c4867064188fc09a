"""The errors a command ends with. Each carries its exit code; task.py alone turns one
into a line on stderr and that code, so no other module decides an exit code."""

from __future__ import annotations

import contextlib


class TrainerError(Exception):
    """A failure the user is told in one line: exit code 1 (the run could not go on)."""

    exit_code = 1
    prefix = "error: "


class UsageError(TrainerError):
    """Bad input, found before anything is written: exit code 2."""

    exit_code = 2


class Finished(TrainerError):
    """Nothing to do, which is no failure: said in one line, exit code 0."""

    exit_code = 0
    prefix = ""


@contextlib.contextmanager
def usage():
    """A ValueError from the checks inside becomes a UsageError: library functions raise
    ValueError for a bad value, and at the command line that is bad input."""
    try:
        yield
    except ValueError as e:
        raise UsageError(str(e)) from None
