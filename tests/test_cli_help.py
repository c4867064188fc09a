"""trainer/cli_help.py: each command's flags, the one list its help and its refusals read."""

from __future__ import annotations

import pytest

from tests.conftest import run_task
from trainer import cli_help, schema, task
from trainer.config import Config, RenderConfig, RoleConfig, VisionConfig


def test_every_flag_is_taken_by_some_command():
    every = (Config, VisionConfig, RenderConfig, RoleConfig)
    names = {f.name for cls in every for f in schema.flag_fields(cls)}
    assert names == set().union(*(cli_help.takes(c) for c in task.COMMANDS))
    assert set(cli_help.HELP) == set(task.COMMANDS)


def test_the_roles_take_the_training_flags_too_and_the_others_only_their_own():
    training = {f.name for f in schema.flag_fields(Config)}
    for command in cli_help.TRAINING_TOO:
        assert training <= cli_help.takes(command)
    assert cli_help.takes("eval") == {"logdir", "run", "eval_episodes"}
    assert cli_help.takes("plot") == {"logdir", "run"}
    assert "dagger_episodes" in cli_help.takes("train") - cli_help.takes("learn")


@pytest.mark.parametrize(
    "command, flag, words",
    [
        ("render", "learning_rate", "render does not take --learning_rate (a flag of train, "),
        ("eval", "num_envs", "eval does not take --num_envs"),
        ("plot", "dagger_episodes", "plot does not take --dagger_episodes (a flag of train)"),
        ("train", "width", "train does not take --width (a flag of render)"),
        ("learn", "image_size", "learn does not take --image_size (a flag of train)"),
    ],
)
def test_a_flag_the_command_does_not_read_is_refused_naming_who_takes_it(command, flag, words):
    cli_help.check_flags(command, ["logdir", "run"])  # every command's own
    with pytest.raises(ValueError) as refused:
        cli_help.check_flags(command, ["run", flag])
    assert str(refused.value).startswith(words)


def test_the_refusal_is_one_line_and_exit_2_before_anything_is_written(tmp_path):
    result = run_task("render", f"--logdir={tmp_path / 'runs'}", "--learning_rate=1", timeout=120)
    assert result.returncode == 2
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: render does not take --learning_rate")
    assert not (tmp_path / "runs").exists()
