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

from tests.conftest import ROOT, run_task
from trainer import evaluate, launch

# Items are 512 steps (distributed.SEQUENCE_LENGTH): two per learner iteration.
FLAGS = [
    "--collect_steps=1024",
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
        # Kill a collector once it has collected (its summaries exist) and the learner trains.
        _wait_for(
            lambda: (run_dir / "train" / "collector-0").is_dir()
            and list((run_dir / "checkpoints").glob("ckpt-*.index")),
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
    speeds = evaluate.read_scalars(str(run_dir / "train"))["Metrics/EnvStepsPerSecond"]
    assert [step for step, _ in speeds] == [1024, 2048, 3072, 4096]
    # The restarted collector rejoined: its summaries come from two processes.
    assert len(list((run_dir / "train" / "collector-0").glob("events.*"))) == 2
    for task in (0, 1):
        collector = evaluate.read_scalars(str(run_dir / "train" / f"collector-{task}"))
        assert {"Metrics/AverageReturn", "Metrics/SuccessRate"} <= set(collector)


def _server_info(address: str) -> dict:
    import reverb

    return reverb.Client(address).server_info(timeout=30)


@pytest.mark.slow
def test_learner_resumes_and_reverb_restores_its_checkpoint(tmp_path):
    common = [f"--logdir={tmp_path}", "--run=resume", *FLAGS, "--collectors=1"]
    first = run_task("distributed", "--total_steps=2048", *common, timeout=600)
    assert first.returncode == 0, first.stderr[-3000:]

    # A Reverb server restarted on the run reloads its checkpoint: the learner's
    # last variables are there for collectors before any learner pushes again.
    port = launch.free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "trainer.task", "reverb", f"--port={port}", *common[:2], *FLAGS],
        cwd=ROOT,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        from trainer import distributed

        distributed.wait_for_server(f"127.0.0.1:{port}", timeout=120)
        assert _server_info(f"127.0.0.1:{port}")["variables"].current_size == 1
    finally:
        server.send_signal(signal.SIGTERM)
        _, stderr = server.communicate(timeout=60)
    assert server.returncode == 128 + signal.SIGTERM, stderr[-2000:]

    second = run_task("distributed", "--total_steps=3072", *common, timeout=600)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Resuming" in second.stderr and "from env step 2,048" in second.stderr
    result = json.loads((tmp_path / "resume" / "eval.json").read_text())
    assert result["env_steps"] == 3072


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["collect"], "collect needs --run"),
        (["distributed", "--agent=sac"], "distributed training runs --agent=ppo"),
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
