"""Distributed training on loopback: a real Reverb server, two collectors, one learner."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, ctrl_c_reaches_python, run_task
from trainer import evaluate, launch

# One env per collector and segments of 1,024 steps: one segment per learner iteration.
FLAGS = [
    "--collect_steps=1024",
    "--num_envs=1",
    "--checkpoint_interval=1024",
    "--eval_interval=0",
    "--eval_episodes=2",
    "--actor_layers=16",
    "--value_layers=16",
]


def _wait_for(predicate, timeout: float, what: str) -> None:
    deadline = time.time() + timeout
    while not predicate():
        if time.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


@pytest.mark.slow
def test_two_collectors_survive_a_killed_collector(tmp_path):
    run_dir = tmp_path / "dist"
    logs: list[str] = []
    supervisor = launch.Supervisor(
        [f"--logdir={tmp_path}", "--run=dist", "--total_steps=4096", *FLAGS],
        collectors=2,
        log=logs.append,
    )
    outcome = {}
    thread = threading.Thread(target=lambda: outcome.update(code=supervisor.run()))
    thread.start()
    try:
        # Kill a collector once the learner has trained on collected data.
        _wait_for(
            lambda: list((run_dir / "checkpoints").glob("ckpt-*.index")),
            timeout=400,
            what="the first learner checkpoint",
        )
        os.kill(supervisor.procs["collector-0"].pid, signal.SIGKILL)
    finally:
        thread.join(timeout=600)
    assert not thread.is_alive()
    assert outcome["code"] == 0, logs
    assert supervisor.restarts == {"collector-0": 1}, logs
    # Every process has exited; the collectors on their own, seeing the learner's last step.
    assert all(proc.poll() is not None for proc in supervisor.procs.values())
    assert supervisor.procs["collector-0"].returncode == 0
    assert supervisor.procs["collector-1"].returncode == 0
    assert supervisor.procs["reverb"].returncode == 128 + signal.SIGTERM

    assert json.loads((run_dir / "eval.json").read_text())["env_steps"] == 4096
    assert (run_dir / "policy" / "saved_model.pb").exists()
    scalars = evaluate.read_scalars(str(run_dir / "train"))
    assert [step for step, _ in scalars["Metrics/EnvStepsPerSecond"]] == [1024, 2048, 3072, 4096]
    # The collectors' episodes reach the learner's summaries inside their segments.
    assert {"Metrics/AverageReturn", "Metrics/PolicyLag", "Metrics/DroppedEnvSteps"} <= set(scalars)
    assert all(0 <= lag <= 2 for _, lag in scalars["Metrics/PolicyLag"])
    assert sorted(os.listdir(run_dir / "train")) == sorted(
        f for f in os.listdir(run_dir / "train") if f.startswith("events.")
    )  # no collector writes into the run


def _start(role: str, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "trainer.task", role, *args],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )


# SAC as the roles run it: transitions in a replay table, a report per segment.
SAC = ["--agent=sac", "--learning_starts=256", "--batch_size=32", "--replay_capacity=10000"]


@pytest.mark.slow
@pytest.mark.parametrize("agent", [[], SAC], ids=["ppo", "sac"])
def test_reverb_restarted_mid_run_loses_nothing_but_segments_in_flight(tmp_path, agent):
    """A replaying learner's table starts over on the new server, and training goes on:
    Reverb's writers and datasets reconnect by themselves."""
    port = launch.free_port()
    common = [f"--logdir={tmp_path}", "--run=restart", "--total_steps=4096", *FLAGS, *agent]
    address = f"--reverb_address=127.0.0.1:{port}"
    server = _start("reverb", f"--port={port}", *common)
    learner = _start("learn", address, *common)
    collector = _start("collect", address, "--task=0", *common)
    try:
        run_dir = tmp_path / "restart"
        _wait_for(
            lambda: list((run_dir / "checkpoints").glob("ckpt-*.index")),
            timeout=400,
            what="the first learner checkpoint",
        )
        server.kill()
        server.wait()
        time.sleep(5)  # down for a while: every role notices
        server = _start("reverb", f"--port={port}", *common)  # the same address
        _, learner_err = learner.communicate(timeout=600)
        _, collector_err = collector.communicate(timeout=120)
    finally:
        for proc in (learner, collector, server):
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)
    assert learner.returncode == 0, learner_err[-3000:]
    assert collector.returncode == 0, collector_err[-3000:]
    assert "lost the Reverb server" in learner_err + collector_err
    assert json.loads((run_dir / "eval.json").read_text())["env_steps"] == 4096
    if agent:  # trained on the new server's table too
        assert _checkpointed(run_dir, "train_step") > 2048


def _checkpointed(run_dir, name: str) -> int:
    import tensorflow as tf

    reader = tf.train.load_checkpoint(str(run_dir / "checkpoints"))
    return int(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))


@pytest.mark.slow
def test_sac_trains_from_the_replay_table_at_its_train_ratio(tmp_path):
    flags = [f"--logdir={tmp_path}", "--run=sac", "--total_steps=2048", *FLAGS, *SAC]
    result = run_task("distributed", "--collectors=2", "--collect_steps=128", *flags)
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = tmp_path / "sac"
    assert json.loads((run_dir / "eval.json").read_text())["env_steps"] == 2048
    # One gradient step per env step reported (--train_ratio=1, its default) once the
    # table holds 256 transitions: the collectors may have written them by the first
    # report the learner takes, or by its second (the queue holds one iteration's).
    steps = _checkpointed(run_dir, "train_step")
    assert 2048 - 256 <= steps <= 2048
    assert steps == _checkpointed(run_dir, "agent/_critic_optimizer/iter")
    assert "Collector 1: learner finished" in result.stderr


@pytest.mark.slow
def test_a_learner_without_collectors_fails_in_one_line_and_stops_on_sigterm(tmp_path):
    port = launch.free_port()
    common = [f"--logdir={tmp_path}", *FLAGS, f"--reverb_address=127.0.0.1:{port}"]
    server = _start("reverb", f"--port={port}", "--run=lonely", f"--logdir={tmp_path}", *FLAGS)
    try:
        alone = _start("learn", "--run=lonely", "--data_timeout=5", *common)
        _, err = alone.communicate(timeout=300)
        assert alone.returncode == 1, err[-3000:]
        assert err.splitlines()[-1] == "error: no experience from any collector for 5 s"
        # Blocked waiting for data, a learner still stops on SIGTERM (the timeout bounds
        # a hang; data_timeout, 600 s, would end the wait otherwise).
        waiting = _start("learn", "--run=waiting", *common)
        said: list[str] = []
        threading.Thread(target=lambda: said.extend(waiting.stderr), daemon=True).start()
        # Its last line before it waits for segments (the bound is against a hang).
        _wait_for(lambda: any(x.startswith("Learner: ") for x in said), 300, "the learner")
        time.sleep(1)  # into the wait
        waiting.send_signal(signal.SIGTERM)
        assert waiting.wait(timeout=120) == 143, "".join(said[-30:])
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=60)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect"], "collect needs --run"),
        (["learn", "--run=x", "--reverb_address=nohost"], "--reverb_address must be HOST:PORT"),
        (["distributed", "--collectors=0"], "--collectors must be at least 1"),
    ],
)
def test_role_usage_errors(tmp_path, args, message):
    result = run_task(*args, f"--logdir={tmp_path}")
    assert result.returncode == 2
    assert message in result.stderr
    assert not os.listdir(tmp_path)


def test_roles_read_a_flag_file(tmp_path):
    # The Kubernetes manifests hand every role its flags in a file (a ConfigMap).
    flag_file = tmp_path / "flags.txt"
    flag_file.write_text("--run=from-file\n--reverb_address=no-port\n")
    result = run_task("learn", f"--flagfile={flag_file}", f"--logdir={tmp_path / 'runs'}")
    assert result.returncode == 2
    assert "--reverb_address must be HOST:PORT, got 'no-port'" in result.stderr


def _processes_of(run: str) -> list[str]:
    """Command lines of live processes that name `run` (the supervisor's children do)."""
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue  # gone meanwhile
        if f"--run={run}" in args:
            found.append(" ".join(args))
    return found


@pytest.mark.slow
def test_ctrl_c_stops_every_process_and_keeps_a_checkpoint(tmp_path):
    run_dir = tmp_path / "ctrl-c"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "trainer.task", "distributed", f"--logdir={tmp_path}"]
        + ["--run=ctrl-c", "--total_steps=1000000", *FLAGS],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=ctrl_c_reaches_python,
    )
    try:
        _wait_for(
            lambda: list((run_dir / "checkpoints").glob("ckpt-*.index")),
            timeout=400,
            what="the first learner checkpoint",
        )
        assert len(_processes_of("ctrl-c")) == 5  # supervisor, server, learner, 2 collectors
        supervisor.send_signal(signal.SIGINT)
        _, stderr = supervisor.communicate(timeout=300)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()  # its children get SIGTERM from the kernel (PR_SET_PDEATHSIG)
    assert supervisor.returncode == 130, stderr[-3000:]
    assert "Interrupted; all processes stopped" in stderr
    assert _processes_of("ctrl-c") == []
    # The learner saved on its way out: its last checkpoint is past the first one.
    steps = [int(p.name[5:-6]) for p in (run_dir / "checkpoints").glob("ckpt-*.index")]
    assert max(steps) >= 1024 and (run_dir / "policy" / "saved_model.pb").exists()


@pytest.mark.slow
def test_a_killed_supervisor_leaves_no_orphans(tmp_path):
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "trainer.task", "distributed", f"--logdir={tmp_path}"]
        + ["--run=orphans", "--total_steps=1000000", *FLAGS],
        cwd=ROOT,
        stderr=subprocess.DEVNULL,
    )
    _wait_for(lambda: len(_processes_of("orphans")) == 5, timeout=120, what="all roles")
    supervisor.kill()
    supervisor.wait()
    _wait_for(lambda: _processes_of("orphans") == [], timeout=120, what="the roles to exit")


class _ScriptedSupervisor(launch.Supervisor):
    """The supervisor's own logic, with stand-in roles: collectors that always fail."""

    def _start(self, name: str, role: str, *extra: str) -> None:
        code = "import sys; sys.exit(1)" if role == "collect" else "import time; time.sleep(60)"
        self.procs[name] = subprocess.Popen([sys.executable, "-c", code], start_new_session=True)


def test_supervisor_fails_in_one_line_when_no_collector_is_left():
    logs: list[str] = []
    supervisor = _ScriptedSupervisor([], collectors=2, log=logs.append)
    assert supervisor.run() == 1
    assert logs[-1] == f"no collector left: each failed {launch.MAX_RESTARTS + 1} times"
    assert supervisor.restarts == {"collector-0": 3, "collector-1": 3}
    assert all(proc.poll() is not None for proc in supervisor.procs.values())
    # The roles still running (a 60 s sleep) were stopped, not waited out.
    others = [proc for name, proc in supervisor.procs.items() if not name.startswith("collector")]
    assert others and all(proc.returncode < 0 for proc in others)
