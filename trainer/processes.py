"""Processes: how many children the machine holds, that they never outlive their parent,
and the signals a save holds back."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import signal
import threading

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM, parent: int | None = None) -> None:
    """In a child: `signum` when the parent dies, even by SIGKILL (Linux prctl).

    `parent` is the pid the child was started by (default: its parent now). A parent
    that died before the call has left this process to init or a subreaper, so
    getppid() no longer names it: then this process gets `signum` at once.
    """
    parent = os.getppid() if parent is None else parent
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


@contextlib.contextmanager
def signals_held(signums=(signal.SIGTERM, signal.SIGINT)):
    """Holds `signums` back until the block ends, then raises the first one that came.

    A handler that raises (SIGTERM's SystemExit, SIGINT's KeyboardInterrupt) may run
    while pybind11 turns a C++ error into a Python one, and a SavedModel export does
    that for every op it asks an attribute it lacks: pybind11 then replaces the
    exception with a RuntimeError, and a SIGTERM ended the run with exit 1 and a
    traceback instead of 143 and a checkpoint (a CI run, tests/test_storage.py). A
    held signal also leaves no half-written save. Outside the main thread, where no
    handler can be set, it holds nothing; nor does it hold a signal whose handler was
    set outside Python, which it could not put back.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    came: list[int] = []
    previous = {
        s: signal.signal(s, lambda signum, frame: came.append(signum))
        for s in signums
        if signal.getsignal(s) is not None
    }
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if came:
            signal.raise_signal(came[0])


def child_main(parent: int, target: str, *args) -> None:
    """A spawned child's entry point: dies with `parent`, then imports and runs `target`.

    `target` is "module:function". A spawned child unpickles its target, importing the
    target's module, before running any of its code; an env process's module loads
    TensorFlow, which takes seconds. Its parent killed meanwhile left it running for
    those seconds and then failing on a broken pipe. This module loads nothing heavy,
    so the child asks to die with its parent first thing (kill -9 included).
    """
    die_with_parent(signal.SIGKILL, parent)
    module, name = target.split(":")
    getattr(importlib.import_module(module), name)(*args)


# Memory an env process adds (RssAnon of a KukaGrasp-v0 process after start-up:
# 289 MB measured; its 263 MB of shared libraries are shared between processes).
ENV_PROCESS_MB = 300
# More env processes than this per core only queue for it.
ENVS_PER_CORE = 4


def available_mb(
    meminfo: str = "/proc/meminfo",
    own_cgroup: str = "/proc/self/cgroup",
    cgroup_root: str = "/sys/fs/cgroup",
) -> float | None:
    """Memory this process may still use: the lowest of the machine's and its cgroups'.

    The paths are parameters so a test can hand in a fake /proc and cgroup tree.
    """
    found = []
    with contextlib.suppress(OSError, ValueError, KeyError):
        with open(meminfo) as f:
            info = dict(line.split(":", 1) for line in f)
        found.append(int(info["MemAvailable"].split()[0]) / 1024)
    for limit, usage in _cgroup_memory_files(own_cgroup, cgroup_root):
        with contextlib.suppress(OSError, ValueError), open(limit) as f, open(usage) as g:
            found.append((int(f.read()) - int(g.read())) / 2**20)  # "max": no limit, skipped
    return min(found) if found else None


def _cgroup_memory_files(own_cgroup: str, cgroup_root: str):
    """(limit, usage) files of this process's own memory cgroup and each of its ancestors.

    A limit anywhere on the path binds (a systemd scope inside a slice inside a
    container), so every level counts, v2 (`0::/path`, memory.max) and v1
    (`N:memory:/path`, memory.limit_in_bytes). A level missing from the mount (a
    container that sees only its own cgroup as the root) is skipped.
    """
    try:
        with open(own_cgroup) as f:
            lines = f.read().splitlines()
    except OSError:
        return
    for fields in (line.split(":", 2) for line in lines):
        if len(fields) != 3:
            continue
        _, controllers, path = fields
        if controllers == "":
            mount, names = cgroup_root, ("memory.max", "memory.current")
        elif "memory" in controllers.split(","):
            mount = os.path.join(cgroup_root, "memory")
            names = ("memory.limit_in_bytes", "memory.usage_in_bytes")
        else:
            continue
        parts = [part for part in path.split("/") if part]
        for depth in range(len(parts), -1, -1):
            level = os.path.join(mount, *parts[:depth])
            yield os.path.join(level, names[0]), os.path.join(level, names[1])


def check_env_count(num_envs: int) -> None:
    """ValueError, in one line with the estimate, if `num_envs` env processes cannot fit."""
    cores = os.cpu_count() or 1
    if num_envs > ENVS_PER_CORE * cores:
        raise ValueError(
            f"--num_envs={num_envs} is more than {ENVS_PER_CORE} env processes per core "
            f"({cores} cores here); use at most {ENVS_PER_CORE * cores}"
        )
    available = available_mb()
    if available is not None and num_envs * ENV_PROCESS_MB > available:
        raise ValueError(
            f"--num_envs={num_envs} needs about {num_envs * ENV_PROCESS_MB / 1024:.1f} GB "
            f"({ENV_PROCESS_MB} MB per env process) but {available / 1024:.1f} GB is free; "
            f"use at most {max(1, int(available // ENV_PROCESS_MB))}"
        )
