"""The algorithm table: every agent config.py knows has a module with the same interface."""

from __future__ import annotations

import inspect

import pytest

from trainer import config, learner


def test_the_table_and_config_name_the_same_algorithms():
    assert tuple(learner.ALGORITHMS) == config.AGENTS


@pytest.mark.parametrize("name", config.AGENTS)
def test_each_algorithm_has_the_interface_both_loops_use(name):
    module = learner.algorithm(name)
    assert list(inspect.signature(module.build_agent).parameters) == [
        "cfg",
        "time_step_spec",
        "action_spec",
        "optimizer",
        "train_step",
        "remaining",
    ]
    # A replaying algorithm's learner also takes the distributed loop's replay table.
    replay = ["replay"] if module.REPLAYS else []
    assert list(inspect.signature(module.Learner).parameters) == ["cfg", "agent", *replay]
    assert list(inspect.signature(module.Learner.learn).parameters) == [
        "self",
        "experience",
        "new_steps",
    ]
    assert callable(module.Learner.tracked)


def test_an_unknown_algorithm_is_named():
    with pytest.raises(
        ValueError, match=f"unknown agent 'dqn'; choose one of {', '.join(config.AGENTS)}"
    ):
        learner.algorithm("dqn")
