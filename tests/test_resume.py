"""trainer/resume.py: what a resumed run takes from its saved settings and from the flags."""

import dataclasses

from trainer import config, resume
from trainer.config import Config, VisionConfig


def test_differences_ignore_resumable_fields():
    saved = Config(run="a")
    assert resume.differences(saved, dataclasses.replace(saved, total_steps=10**6)) == []
    diffs = resume.differences(saved, dataclasses.replace(saved, learning_rate=1.0))
    assert len(diffs) == 1 and diffs[0].startswith("learning_rate")


def test_merged_takes_only_the_given_fields_and_those_kept():
    saved = Config(run="a", logdir="old", learning_rate=5e-4, seed=1)
    wanted = Config(run="a", logdir="new", learning_rate=1e-3, seed=2)
    given = {"seed": 2, "teacher": "t", "clip_ratio": 0.3, "learning_starts": 5}
    cfg = resume.merged(saved, wanted, given, keep=("logdir",))
    assert (cfg.seed, cfg.logdir, cfg.learning_rate) == (2, "new", 5e-4)
    # The run's own agent's setting is taken; another agent's, which it lacks, is not.
    assert cfg.algo == config.PPOConfig(clip_ratio=0.3)
    assert resume.merged(saved, wanted, None) == wanted


def test_the_same_rules_serve_the_camera_settings():
    saved = VisionConfig(image_size=48)
    wanted = resume.merged(saved, VisionConfig(dagger_iterations=16), {"dagger_iterations": 16})
    assert (wanted.image_size, wanted.dagger_iterations) == (48, 16)
    assert resume.differences(saved, wanted) == []  # dagger_iterations is marked resumable
    changed = dataclasses.replace(wanted, image_size=64)
    assert resume.differences(saved, changed) == ["image_size: run has 48, flags say 64"]
