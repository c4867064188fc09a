"""The command line: --help, and bad input refused in one line before any work."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess

import pytest
from absl import flags

from tests.conftest import ROOT, make_env, run_task, tiny_module
from trainer import commands, config, errors, schema, start, task
from trainer.config import Config, RenderConfig, RoleConfig
from trainer.rundir import RunDir
from trainer.task import COMMANDS


def _help(command: str) -> str:
    result = run_task(command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m trainer.task {command} ")
    assert ROOT not in result.stdout  # no absolute path in the header or anywhere
    return result.stdout


def test_help_is_per_command_and_documents_every_flag():
    texts = {command: _help(command) for command in COMMANDS}
    for cls, command in ((Config, "train"), (RenderConfig, "render"), (RoleConfig, "collect")):
        for field in schema.flag_fields(cls):
            name = f"[no]{field.name}" if field.type == "bool" else field.name
            assert f"--{name}  (default: " in texts[command], (command, name)
    assert "Environment steps to train for" in texts["train"]
    # Where an agent's default differs, help shows it beside the flag's own.
    assert "--collect_steps  (default: 4096; sac: 64)" in texts["train"]
    assert "--actor_layers  (default: '200,100'; sac: '400,300')" in texts["train"]
    # Each command shows its own flags, not the others'.
    assert "--total_steps" not in texts["render"] and "--fps" not in texts["train"]
    assert texts["eval"].count("  --") == 3
    for command in COMMANDS:
        assert "Other commands: " in texts[command]


def test_flags_not_given_take_the_agents_defaults():
    flag_values = flags.FlagValues()
    task.define_flags(flag_values)
    flag_values(["task", "--agent=sac", "--collect_steps=128", "--seed=3"])
    cfg = task.config_from_flags(Config, flag_values)
    assert cfg == config.for_agent("sac", collect_steps=128, seed=3)
    assert cfg.discount == config.AGENT_DEFAULTS["sac"]["discount"] != Config().discount


def _refused(tmp_path, *args: str) -> str:
    logdir = tmp_path / "runs"
    result = run_task(f"--logdir={logdir}", "--run=bad", *args, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert not logdir.exists() or os.listdir(logdir) == []
    return lines[0]


@pytest.mark.parametrize(
    "args, words",
    [
        (["--env_id=NoSuchEnv-v0"], "unknown env id 'NoSuchEnv-v0'"),
        (["--agent=dqn"], "unknown agent 'dqn'"),
        (["--total_steps=0"], "--total_steps must be positive"),
        (["--total_steps=-5"], "--total_steps must be positive"),
        (["--num_envs=0"], "--num_envs must be positive"),
        (["--num_envs=-2"], "--num_envs must be positive"),
        (["--total_steps=lots"], "--total_steps=lots"),
        (["--actor_layers=a,b"], "--actor_layers takes comma-separated integers"),
        (["--no_such_flag=1"], "no_such_flag"),
        (["extra"], "unexpected arguments: extra"),
        (["--run=Not_A_Name"], "not a valid Kubernetes name"),
        (
            ["--env_id=KukaCamBulletEnv-v0"],
            "need a flat float vector observation): observation Box",
        ),
        (["--env_id=CartPole-v1"], "need a continuous (Box) action): observation Box"),
        (["--num_envs=500"], "--num_envs=500 is more than 4 env processes per core"),
        (["--env_id=KukaGraspCam-v0", "--image_size=16"], "--image_size must be at least 17"),
        (["--env_id=KukaGraspCam-v0", "--dagger_episodes=0"], "--dagger_episodes must be"),
        (
            ["learn", "--env_id=KukaGraspCam-v0"],
            "KukaGraspCam-v0 trains in one process, not as distributed roles",
        ),
        # A camera setting for a state run would be accepted and ignored.
        (["--dagger_iterations=3"], "--dagger_iterations is a setting of KukaGraspCam-v0 runs"),
        (["--run=state", "--image_size=32"], "this run trains KukaGrasp-v0"),
        # An agent's own setting for a run of another agent, likewise.
        (["--agent=sac", "--clip_ratio=0.3"], "--clip_ratio is a setting of --agent=ppo"),
        (["--learning_starts=5"], "--learning_starts is a setting of --agent=sac"),
        (["collect", "--batch_size=5"], "--batch_size is a setting of --agent=sac"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, words):
    assert words in _refused(tmp_path, *args)


@pytest.mark.parametrize(
    "logdir, words",
    [
        ("gs:/kuka-runs/runs", "neither a local path nor gs://BUCKET"),
        ("s3://kuka-runs/runs", "neither a local path nor gs://BUCKET"),
        ("gs://b", "BUCKET has 3-63 characters"),
    ],
)
@pytest.mark.parametrize("command", ["train", "render", "eval", "plot"])
def test_logdir_is_checked_before_anything_is_written(tmp_path, logdir, words, command):
    result = run_task(command, f"--logdir={logdir}", "--run=bad", timeout=120)
    assert result.returncode == 2, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ") and words in line
    assert not os.path.exists(os.path.join(ROOT, logdir.split("/")[0]))


def test_unwritable_logdir(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    result = run_task(f"--logdir={blocker}/runs", timeout=120)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: cannot write to log directory")
    assert len(result.stderr.strip().splitlines()) == 1


def _existing_run(tmp_path, **fields) -> str:
    run_dir = tmp_path / "runs" / "old"
    run_dir.mkdir(parents=True)
    RunDir(str(run_dir)).save_config(Config(logdir=str(tmp_path / "runs"), run="old", **fields))
    return str(run_dir)


def test_a_resumed_run_refuses_another_agents_setting_and_writes_nothing(tmp_path):
    """The run's saved agent decides, which the resume does not name."""
    run_dir = tmp_path / "old"
    run_dir.mkdir()
    RunDir(str(run_dir)).save_config(config.for_agent("sac", run="old"))
    before = sorted(os.listdir(run_dir))
    result = run_task(f"--logdir={tmp_path}", "--run=old", "--clip_ratio=0.2", timeout=120)
    assert result.returncode == 2
    readers = "/".join(schema.owners(config.Config)["clip_ratio"])  # ppo, and any PPO variant
    assert result.stderr.strip().splitlines()[-1] == (
        f"error: --clip_ratio is a setting of --agent={readers} runs, and this run trains with "
        "sac; leave it out"
    )
    assert sorted(os.listdir(run_dir)) == before


def test_existing_run_with_other_config_is_refused(tmp_path):
    run_dir = _existing_run(tmp_path, learning_rate=0.5)
    before = open(os.path.join(run_dir, "config.json")).read()
    result = run_task(
        f"--logdir={tmp_path / 'runs'}", "--run=old", "--learning_rate=0.3", timeout=120
    )
    assert result.returncode == 2
    assert "exists with another config (learning_rate" in result.stderr
    assert open(os.path.join(run_dir, "config.json")).read() == before
    assert not os.path.exists(os.path.join(run_dir, "command.txt"))


def test_corrupted_config_is_refused(tmp_path):
    run_dir = _existing_run(tmp_path)
    with open(os.path.join(run_dir, "config.json"), "w") as f:
        f.write('{"agent": "ppo", ')
    result = run_task(f"--logdir={tmp_path / 'runs'}", "--run=old", timeout=120)
    assert result.returncode == 2
    assert "cannot read" in result.stderr and "config.json" in result.stderr


def test_prepare_run_writes_config_and_command(tmp_path):
    cfg, run_dir, _ = start.prepare(Config(logdir=str(tmp_path), run="fresh"), "python -m x --a=1")
    assert run_dir == os.path.join(str(tmp_path), "fresh")
    assert json.load(open(os.path.join(run_dir, "config.json")))["run"] == "fresh"
    assert open(os.path.join(run_dir, "command.txt")).read() == "python -m x --a=1\n"
    # Resuming with more steps is allowed and records the second command line.
    start.prepare(dataclasses.replace(cfg, total_steps=10**6), "second")
    assert open(os.path.join(run_dir, "command.txt")).read().splitlines()[-1] == "second"


def test_default_run_id_comes_from_agent_env_and_time(tmp_path):
    cfg, run_dir, mirror = start.prepare(Config(logdir=str(tmp_path)), "cmd")
    assert mirror is None
    assert cfg.run.startswith("ppo-kukagrasp-v0-")
    assert os.path.isdir(run_dir)


def test_make_names_the_trainers_exit_code(tmp_path):
    result = subprocess.run(
        ["make", "-s", "train", "RUN=Not_A_Name", f"LOGDIR={tmp_path}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=make_env(),
    )
    assert result.returncode == 2  # make's own, whatever the command's
    lines = result.stderr.strip().splitlines()
    assert lines[0].startswith("error: run id 'Not_A_Name' is not a valid Kubernetes name")
    assert lines[-1].endswith("train] Error 2")


def test_eval_refuses_an_episode_count_that_makes_no_sense_before_any_process(tmp_path):
    run_dir = tmp_path / "done"
    run_dir.mkdir()
    RunDir(str(run_dir)).save_config(Config(run="done"))
    with pytest.raises(errors.UsageError, match="--eval_episodes must be positive, got 0"):
        commands.evaluate(Config(logdir=str(tmp_path), run="done", eval_episodes=0))
    assert sorted(os.listdir(run_dir)) == ["config.json"]


def test_a_sigterm_that_tensorflow_turns_into_another_error_still_exits_143(
    sigterm_exits, sigterm_inside_a_tensorflow_error, monkeypatch, tmp_path
):
    """Where no hold protects it (tracing a gradient asks every op as an export does),
    pybind11's RuntimeError still ends the run as SIGTERM's 143."""
    import tensorflow as tf

    def main(argv):
        task._stop_on_sigterm()
        module = tiny_module()
        armed.append(sigterm_inside_a_tensorflow_error())
        tf.saved_model.save(module, str(tmp_path / "policy"))  # no hold
        return 0

    armed = []
    monkeypatch.setattr(task, "main", main)
    monkeypatch.setattr(task, "_TERMINATED", [])
    with pytest.raises(SystemExit) as stopped:
        task._main(["task.py"])
    assert stopped.value.code == 143 and armed == [[signal.SIGTERM]]


def test_an_error_without_a_sigterm_is_not_taken_for_one(monkeypatch):
    def main(argv):
        raise RuntimeError("a bug")

    monkeypatch.setattr(task, "main", main)
    monkeypatch.setattr(task, "_TERMINATED", [])
    with pytest.raises(RuntimeError, match="a bug"):
        task._main(["task.py"])
