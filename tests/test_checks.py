"""Settings checks: each names the first setting that makes no sense."""

from __future__ import annotations

import dataclasses

import pytest

from trainer import checks, config
from trainer.config import Config, VisionConfig


def test_defaults_are_valid():
    checks.validate(Config())


@pytest.mark.parametrize(
    "change, words",
    [
        ({"agent": "dqn"}, "unknown agent"),
        ({"total_steps": 0}, "--total_steps must be positive"),
        ({"num_envs": -1}, "--num_envs must be positive"),
        ({"collect_steps": 3, "num_envs": 2}, "at least 2 steps"),
        ({"discount": 1.5}, "--discount"),
        ({"eval_interval": -5}, "--eval_interval"),
        ({"lr_schedule": "cosine"}, "unknown --lr_schedule"),
        ({"entropy_schedule": "cosine"}, "unknown --entropy_schedule"),
        ({"entropy_schedule": "linear"}, "schedules --entropy_coef, which is 0.0"),
        ({"reward_clip": -1.0}, "--reward_clip"),
        ({"gae_lambda": 1.5}, "--gae_lambda must be in"),
        ({"num_epochs": 0}, "--num_epochs must be positive"),
        ({"reward_scale": -1.0}, "--reward_scale must be positive"),
        ({"agent": "sac", "learning_starts": -1}, "--learning_starts must be 0 or more"),
        ({"agent": "sac", "target_update_tau": 0.0}, "--target_update_tau must be in"),
        ({"agent": "sac", "total_steps": 10_000}, "sac never takes a gradient step"),
        ({"agent": "sac", "replay_capacity": 5_000}, "sac never takes a gradient step"),
    ],
)
def test_validate_names_the_problem(change, words):
    with pytest.raises(ValueError, match=words):
        checks.validate(config.for_agent(**change))


def test_a_run_holds_its_own_agents_settings():
    with pytest.raises(ValueError, match="a sac run holds PPOConfig"):
        checks.validate(dataclasses.replace(Config(), agent="sac"))


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("dagger_iterations", 0, "--dagger_iterations must be positive"),
        ("dagger_episodes", -1, "--dagger_episodes must be positive"),
        ("student_learning_rate", 0.0, "--student_learning_rate must be positive"),
        ("student_batch_size", 0, "--student_batch_size must be positive"),
        ("image_size", 16, "--image_size must be at least 17"),
    ],
)
def test_camera_settings_out_of_range_are_named(field, value, words):
    with pytest.raises(ValueError, match=words):
        checks.validate_vision(dataclasses.replace(VisionConfig(), **{field: value}))


def test_the_smallest_frame_the_student_takes_is_valid():
    checks.validate_vision(VisionConfig(image_size=17))
