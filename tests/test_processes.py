"""How many env processes a machine holds (trainer/processes.py)."""

from __future__ import annotations

import os

import pytest

from trainer import processes


def test_env_count_is_bounded_by_cores():
    cores = os.cpu_count() or 1
    processes.check_env_count(processes.ENVS_PER_CORE * cores)  # fits
    with pytest.raises(ValueError, match=f"use at most {processes.ENVS_PER_CORE * cores}$"):
        processes.check_env_count(processes.ENVS_PER_CORE * cores + 1)


def test_env_count_is_bounded_by_free_memory(monkeypatch):
    monkeypatch.setattr(processes, "_available_mb", lambda: 1000.0)
    processes.check_env_count(3)  # 900 MB
    with pytest.raises(ValueError) as refused:
        processes.check_env_count(4)
    assert str(refused.value) == (
        "--num_envs=4 needs about 1.2 GB (300 MB per env process) but 1.0 GB is free; use at most 3"
    )


def test_free_memory_is_read_from_this_machine():
    available = processes._available_mb()  # noqa: SLF001
    assert available is None or available > 0
