"""TensorBoard started as `make tensorboard` starts it serves the run's scalars."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from tests.conftest import ROOT, make_env

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str, deadline: float):
    while True:
        try:
            with urllib.request.urlopen(url, timeout=10) as response:
                return json.load(response)
        except (urllib.error.URLError, ConnectionError):
            if time.time() > deadline:
                raise
            time.sleep(1)


def test_make_tensorboard_serves_the_runs_tags(tiny_run):
    port = _free_port()
    logdir = os.path.dirname(tiny_run)
    server = subprocess.Popen(
        ["make", "-s", "tensorboard", f"LOGDIR={logdir}", f"TB_PORT={port}"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
        env=make_env(),
    )
    try:
        deadline = time.time() + 180
        url = f"http://127.0.0.1:{port}/data/plugin/scalars/tags"
        tags = _get_json(url, deadline)
        # The event files may still be loading; wait for both runs.
        while {"tiny/train", "tiny/eval"} - set(tags) and time.time() < deadline:
            time.sleep(1)
            tags = _get_json(url, deadline)
        assert "Metrics/AverageReturn" in tags["tiny/train"]
        assert "Losses/total_loss" in tags["tiny/train"]
        assert "Eval/SuccessRate" in tags["tiny/eval"]
        query = "tag=Eval%2FAverageReturn&run=tiny%2Feval"
        points = _get_json(f"http://127.0.0.1:{port}/data/plugin/scalars/scalars?{query}", deadline)
        assert [step for _, step, _ in points] == [600]
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        output = server.communicate(timeout=30)[0]
    assert f"http://127.0.0.1:{port}/" in output
    # As quiet as `make train`: no CUDA/cuDNN/TensorRT probing on a CPU machine, no banner.
    assert not [line for line in output.splitlines() if "cuda" in line.lower()], output
    assert "TensorRT" not in output and "experimental fast data loading" not in output
