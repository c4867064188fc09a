"""trainer/start.py: a start checks, locks and resumes its run, or says why not in one line."""

import os
import shutil

import pytest

from trainer import config, errors, start
from trainer.config import Config


def test_an_unwritable_file_of_the_run_is_one_line_exit_2(tmp_path):
    """Review of issue 25, point 11: an OSError other than a full disk while writing
    config.json or command.txt (another user's file, a read-only file system) ended in
    a traceback. A directory where command.txt belongs stands for it here (EISDIR):
    the tests run as root, whom file permissions do not stop."""
    cfg, run_dir, _ = start.prepare(Config(logdir=str(tmp_path), run="r"), "first")
    os.remove(os.path.join(run_dir, "command.txt"))
    os.mkdir(os.path.join(run_dir, "command.txt"))
    with pytest.raises(errors.UsageError, match=r"^cannot write in .*command\.txt") as refused:
        start.prepare(cfg, "second")
    assert "\n" not in str(refused.value)


def _saved_run(tmp_path, **fields) -> Config:
    cfg = config.for_agent(logdir=str(tmp_path), run="r", **fields)
    start.prepare(cfg, "first")
    return cfg


def test_a_resume_keeps_the_runs_settings_for_the_flags_not_given(tmp_path):
    """A default changed after a run began stopped `make train RUN=...` from resuming it:
    the 20-seed study of issue 26 stopped at seed 5 after issue 27 changed SAC's defaults.
    Here PPO's clip_ratio stands for such a default; --learning_starts, SAC's, is another
    agent's flag, which a PPO run does not hold."""
    _saved_run(tmp_path, clip_ratio=0.3, total_steps=50_000, learning_rate=5e-4)
    wanted = Config(logdir=str(tmp_path), run="r", seed=Config.seed)
    given = {"seed": Config.seed, "learning_starts": 5}
    cfg, run_dir, _ = start.prepare(wanted, "second", given=given)
    assert (cfg.algo.clip_ratio, cfg.total_steps, cfg.learning_rate) == (0.3, 50_000, 5e-4)
    assert open(os.path.join(run_dir, "command.txt")).read() == "first\nsecond\n"


def test_a_resume_takes_the_given_resumable_fields_and_refuses_other_given_changes(tmp_path):
    _saved_run(tmp_path, total_steps=50_000, learning_rate=5e-4)
    more = Config(logdir=str(tmp_path), run="r", total_steps=80_000)
    cfg, _, _ = start.prepare(more, "more", given={"total_steps": 80_000})
    assert (cfg.total_steps, cfg.learning_rate) == (80_000, 5e-4)
    other = Config(logdir=str(tmp_path), run="r", learning_rate=1e-3)
    with pytest.raises(errors.UsageError, match=r"another config \(learning_rate: run has 0\.0005"):
        start.prepare(other, "other", given={"learning_rate": 1e-3})


def test_a_resume_without_given_compares_every_field(tmp_path):
    """A distributed learner passes no `given`: its collectors read the same flags."""
    _saved_run(tmp_path, clip_ratio=0.3)
    with pytest.raises(errors.UsageError, match="clip_ratio: run has 0.3"):
        start.prepare(Config(logdir=str(tmp_path), run="r"), "learner")


def test_a_resume_at_another_logdir_takes_the_new_location(tmp_path):
    """A run directory moved (or a gs:// run staged elsewhere) resumes where it now is."""
    _saved_run(tmp_path / "old")
    shutil.copytree(tmp_path / "old" / "r", tmp_path / "new" / "r")
    moved = Config(logdir=str(tmp_path / "new"), run="r")
    given = {"logdir": moved.logdir, "run": "r"}
    cfg, run_dir, _ = start.prepare(moved, "moved", given=given)
    assert cfg.logdir == str(tmp_path / "new") and run_dir == str(tmp_path / "new" / "r")


def test_a_sac_resume_naming_its_agent_is_checked_with_its_saved_settings(tmp_path):
    """Review of this change: `--agent=sac --total_steps=2000` was checked with SAC's
    default warm-up of 10,000 steps before the run's own 100 were merged, and refused."""
    _saved_run(tmp_path, agent="sac", learning_starts=100, total_steps=1000)
    wanted = config.for_agent("sac", logdir=str(tmp_path), run="r", total_steps=2000)
    cfg, _, _ = start.prepare(wanted, "more", given={"agent": "sac", "total_steps": 2000})
    assert (cfg.total_steps, cfg.algo.learning_starts) == (2000, 100)
