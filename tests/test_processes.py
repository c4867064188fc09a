"""How many env processes a machine holds, and the signals a save holds back
(trainer/processes.py)."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from trainer import processes


def test_env_count_is_bounded_by_cores():
    cores = os.cpu_count() or 1
    processes.check_env_count(processes.ENVS_PER_CORE * cores)  # fits
    with pytest.raises(ValueError, match=f"use at most {processes.ENVS_PER_CORE * cores}$"):
        processes.check_env_count(processes.ENVS_PER_CORE * cores + 1)


def test_env_count_is_bounded_by_free_memory(monkeypatch):
    monkeypatch.setattr(processes, "available_mb", lambda: 1000.0)
    processes.check_env_count(3)  # 900 MB
    with pytest.raises(ValueError) as refused:
        processes.check_env_count(4)
    assert str(refused.value) == (
        "--num_envs=4 needs about 1.2 GB (300 MB per env process) but 1.0 GB is free; use at most 3"
    )


def test_free_memory_is_read_from_this_machine():
    available = processes.available_mb()
    assert available is None or available > 0


GIB = 2**30


def _write(path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _available(tmp_path, own: str, files: dict[str, int | str]) -> float | None:
    """available_mb over a fake /proc and cgroup tree: `own` is /proc/self/cgroup,
    `files` maps paths under the cgroup mount to their contents; 22 GB MemAvailable."""
    _write(tmp_path / "meminfo", f"MemTotal: 32000000 kB\nMemAvailable: {22 * 2**20} kB\n")
    _write(tmp_path / "self-cgroup", own)
    for name, value in files.items():
        _write(tmp_path / "cgroup" / name, f"{value}\n")
    return processes.available_mb(
        str(tmp_path / "meminfo"), str(tmp_path / "self-cgroup"), str(tmp_path / "cgroup")
    )


def test_free_memory_is_the_smallest_along_this_process_cgroup_path_v2(tmp_path):
    """A 1.5 GiB systemd scope inside a 4 GiB slice: the scope binds, not the root's
    (absent) limit nor the machine's 22 GB. The issue's trainer saw 22,841 MB free here."""
    files = {
        "user.slice/memory.max": 4 * GIB,
        "user.slice/memory.current": GIB,
        "user.slice/run.scope/memory.max": GIB + GIB // 2,
        "user.slice/run.scope/memory.current": GIB // 2,
        "user.slice/run.scope/env.scope/memory.max": "max",  # no limit of its own
        "user.slice/run.scope/env.scope/memory.current": 0,
    }
    own = "0::/user.slice/run.scope/env.scope\n"
    assert _available(tmp_path, own, files) == 1024
    # An outer limit binds too when it leaves less room than the inner one.
    files["user.slice/memory.current"] = int(3.75 * GIB)
    assert _available(tmp_path / "fuller", own, files) == 256


def test_free_memory_reads_the_v1_memory_controller_of_this_process(tmp_path):
    """cgroup v1 (or hybrid, as on this machine): the `memory` line names the path under
    /sys/fs/cgroup/memory; the root's unlimited 8 EiB counts for nothing."""
    own = "5:cpu,cpuacct:/\n4:memory:/process_api/abc\n0::/\n"
    files = {
        "memory/memory.limit_in_bytes": 9223372036854771712,
        "memory/memory.usage_in_bytes": 3 * GIB,
        "memory/process_api/memory.limit_in_bytes": 2 * GIB,
        "memory/process_api/memory.usage_in_bytes": GIB // 2,
        "memory/process_api/abc/memory.limit_in_bytes": 9223372036854771712,
        "memory/process_api/abc/memory.usage_in_bytes": GIB // 2,
    }
    assert _available(tmp_path, own, files) == 1536


def test_free_memory_in_a_container_that_sees_only_its_own_cgroup(tmp_path):
    """Without a cgroup namespace /proc/self/cgroup names the host's path, which the
    container's mount does not have: its root, the container's own cgroup, counts."""
    files = {"memory.max": 2 * GIB, "memory.current": GIB}
    assert _available(tmp_path / "limited", "0::/kubepods/pod1/abc\n", files) == 1024
    assert _available(tmp_path / "free", "0::/\n", {}) == 22 * 1024  # no limit: the machine's


def test_a_child_whose_parent_is_gone_before_it_asks_dies_at_once():
    """A child that asks for PR_SET_PDEATHSIG after its parent died (re-parented to init
    or a subreaper) names the parent it was started by: getppid() differs, so it gets
    its signal at once instead of living on."""
    import signal
    import subprocess
    import sys

    gone = "from trainer import processes; processes.die_with_parent(9, parent=1)"
    alive = "import os; from trainer import processes; processes.die_with_parent(9, os.getppid())"
    run = [sys.executable, "-c"]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    assert subprocess.run([*run, gone], cwd=root, timeout=60).returncode == -signal.SIGKILL
    assert subprocess.run([*run, alive], cwd=root, timeout=60).returncode == 0


def test_held_signals_wait_for_the_block_and_the_first_is_raised_once(sigterm_exits):
    done, ctrl_c = [], signal.getsignal(signal.SIGINT)  # ignored under nohup
    with pytest.raises(SystemExit) as stopped, processes.signals_held():
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGINT)
        for i in range(1000):  # loops check for signals: a handler not held runs here
            done.append(i)
    assert stopped.value.code == 143 and len(done) == 1000
    assert signal.getsignal(signal.SIGTERM) is sigterm_exits
    assert signal.getsignal(signal.SIGINT) is ctrl_c


def test_a_block_outside_the_main_thread_holds_nothing_and_does_not_fail():
    failed = []

    def save():
        try:
            with processes.signals_held():
                pass
        except Exception as e:
            failed.append(e)

    thread = threading.Thread(target=save)
    thread.start()
    thread.join()
    assert failed == []
