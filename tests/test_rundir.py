"""trainer/rundir.py: a start that cannot write its run directory says so in one line."""

import os

import pytest

from trainer import rundir
from trainer.config import Config


def test_an_unwritable_file_of_the_run_is_one_line_exit_2(tmp_path):
    """Review of issue 25, point 11: an OSError other than a full disk while writing
    config.json or command.txt (another user's file, a read-only file system) ended in
    a traceback. A directory where command.txt belongs stands for it here (EISDIR):
    the tests run as root, whom file permissions do not stop."""
    cfg, run_dir, _ = rundir.prepare(Config(logdir=str(tmp_path), run="r"), "first")
    os.remove(os.path.join(run_dir, "command.txt"))
    os.mkdir(os.path.join(run_dir, "command.txt"))
    with pytest.raises(rundir.UsageError, match=r"^cannot write in .*command\.txt") as refused:
        rundir.prepare(cfg, "second")
    assert "\n" not in str(refused.value)
