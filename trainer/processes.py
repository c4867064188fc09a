"""Child processes: how many the machine holds, and that they never outlive their parent."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal

_PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """In a child: `signum` when the parent dies, even by SIGKILL (Linux prctl).

    A parent that died before the call leaves this process to init: it exits at once.
    """
    parent = os.getppid()
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent:
        os.kill(os.getpid(), signum)


# Memory an env process adds (RssAnon of a KukaGrasp-v0 process after start-up:
# 289 MB measured; its 263 MB of shared libraries are shared between processes).
ENV_PROCESS_MB = 300
# More env processes than this per core only queue for it.
ENVS_PER_CORE = 4


def _available_mb() -> float | None:
    """Memory this process may still use: the lower of the machine's and its cgroup's."""
    found = []
    with contextlib.suppress(OSError, ValueError):
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
        found.append(int(info["MemAvailable"].split()[0]) / 1024)
    for limit, usage in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        with contextlib.suppress(OSError, ValueError), open(limit) as f, open(usage) as g:
            found.append((int(f.read()) - int(g.read())) / 2**20)
    return min(found) if found else None


def check_env_count(num_envs: int) -> None:
    """ValueError, in one line with the estimate, if `num_envs` env processes cannot fit."""
    cores = os.cpu_count() or 1
    if num_envs > ENVS_PER_CORE * cores:
        raise ValueError(
            f"--num_envs={num_envs} is more than {ENVS_PER_CORE} env processes per core "
            f"({cores} cores here); use at most {ENVS_PER_CORE * cores}"
        )
    available = _available_mb()
    if available is not None and num_envs * ENV_PROCESS_MB > available:
        raise ValueError(
            f"--num_envs={num_envs} needs about {num_envs * ENV_PROCESS_MB / 1024:.1f} GB "
            f"({ENV_PROCESS_MB} MB per env process) but {available / 1024:.1f} GB is free; "
            f"use at most {max(1, int(available // ENV_PROCESS_MB))}"
        )
