"""trainer/errors.py: every error a command ends with carries its exit code."""

from __future__ import annotations

import pytest

from trainer import actors, errors, record, render, rundir, start, storage


@pytest.mark.parametrize(
    "error, code",
    [
        (errors.TrainerError, 1),
        (errors.UsageError, 2),
        (errors.Finished, 0),
        (actors.ActorError, 1),  # an env process died
        (record.CheckpointError, 1),  # no checkpoint restores
        (storage.StorageError, 1),  # storage stayed down
        (storage.LeaseLost, 1),  # another machine took the run over
        (start.DiskFull, 1),
        (start.StorageDown, 1),
        (rundir.AlreadyFinished, 0),
        (render.RenderError, 2),  # a run or policy that cannot be filmed: bad input
        (rundir.RunBusy, 2),  # another process trains the run
    ],
)
def test_each_error_carries_its_exit_code(error, code):
    assert issubclass(error, errors.TrainerError)
    assert error("x").exit_code == code


def test_only_a_finished_run_is_said_without_error():
    assert errors.Finished("done").prefix == ""
    assert errors.UsageError("bad").prefix == errors.TrainerError("failed").prefix == "error: "


def test_usage_turns_a_checks_value_error_into_bad_input():
    bad = pytest.raises(errors.UsageError, match="^--num_envs must be positive$")
    with bad, errors.usage():
        raise ValueError("--num_envs must be positive")
    with pytest.raises(KeyError), errors.usage():  # anything else is a bug: it passes through
        raise KeyError("x")
