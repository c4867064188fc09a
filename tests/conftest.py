"""Shared fixtures: a tiny real training run, made once through the real CLI; a SIGTERM
handled as the trainer handles it, and one sent where TensorFlow converts an error."""

from __future__ import annotations

import fcntl
import os
import shutil
import signal
import subprocess
import sys

import pytest

from bench import common

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# The variables the Makefile exports: under `make test` they reach pytest's environment,
# where a sub-make would take them over the values a test passes (LOCATION over ZONE).
MAKE_EXPORTS = (
    "NAMESPACE",
    "IMAGE",
    "TAG",
    "BUCKET",
    "PROJECT",
    "AUTH",
    "GPU",
    "DRY_RUN",
    "LOCATION",
    "ZONE",
    "CLUSTER",
    "MAKEFLAGS",
    "MAKELEVEL",
    "MFLAGS",
)


def ctrl_c_reaches_python() -> None:
    """A child's SIGINT back to its default, for tests that press Ctrl-C.

    A shell without job control starts a background command (`make test &`, a CI
    runner's `nohup`) with SIGINT ignored; Python then installs no KeyboardInterrupt
    handler, and the trainer, rightly, ignores Ctrl-C as the user who started it so asked.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def make_env(**extra: str) -> dict[str, str]:
    """os.environ without what an outer `make` exported, plus `extra`: a sub-make as a user runs it."""
    env = {k: v for k, v in os.environ.items() if k not in MAKE_EXPORTS}
    return {**env, **extra}


def run_module(module: str, *args: str, timeout: float = 600, env=None):
    """Runs `python -m MODULE ARGS` from the repository root (`env` adds variables)."""
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
    )


def run_python(script: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """Runs `script` in a fresh interpreter from the repository root: pybullet's Kuka envs
    drive its global client, one env per process."""
    return subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )  # fmt: skip


def run_task(*args: str, timeout: float = 600, env=None) -> subprocess.CompletedProcess:
    """Runs `python -m trainer.task` from the repository root (`env` adds variables)."""
    return run_module("trainer.task", *args, timeout=timeout, env=env)


def _made_once(tmp_path_factory, name: str, make) -> str:
    """`make(logdir)` run once per test session, however many xdist workers ask.

    The first worker to take the lock makes it under the session's shared temp root
    (pytest-xdist's recipe); the others wait and reuse it. A tiny run costs 15-30 s of
    training: once, not once per worker. Tests copy it before changing anything.
    """
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # shared by every worker of this session
    logdir, done = root / f"shared-{name}", root / f"shared-{name}.done"
    with open(root / f"shared-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not done.exists():
            shutil.rmtree(logdir, ignore_errors=True)  # a worker's failed attempt
            logdir.mkdir()
            make(logdir)
            done.touch()
    return str(logdir / name)


@pytest.fixture(scope="session")
def tiny_camera_run(tmp_path_factory) -> str:
    """The directory of a finished tiny KukaGraspCam-v0 run, teacher trained by it."""

    def make(logdir):
        camera = ["--env_id=KukaGraspCam-v0", "--image_size=32", "--dagger_episodes=2"]
        result = run_task(
            f"--logdir={logdir}",
            "--run=cam",
            *common.TINY_FLAGS,
            *camera,
            "--dagger_iterations=2",
            "--student_epochs=1",
            timeout=1200,  # a teacher, two rounds and their renders: minutes on a busy machine
        )
        assert result.returncode == 0, result.stderr[-3000:]

    return _made_once(tmp_path_factory, "cam", make)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> str:
    """The directory of a finished tiny PPO run."""

    def make(logdir):
        result = run_task(f"--logdir={logdir}", "--run=tiny", *common.TINY_FLAGS)
        assert result.returncode == 0, result.stderr[-3000:]

    return _made_once(tmp_path_factory, "tiny", make)


@pytest.fixture
def sigterm_exits():
    """SIGTERM handled as task.py handles it, SystemExit(143) wherever it lands; the
    handler before the test put back after it."""

    def handler(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, handler)
    yield handler
    signal.signal(signal.SIGTERM, previous)


@pytest.fixture
def sigterm_inside_a_tensorflow_error(monkeypatch):
    """Arms one SIGTERM to this process where a CI run's landed: while pybind11 builds the
    Python error for a C++ one, which TensorFlow does for every op it asks an attribute
    the op lacks, in a SavedModel export (`_gradient_op_type`,
    tensorflow/python/saved_model/save.py, 2.15.1, _iterate_op_types) as in any trace
    (auto_control_deps_utils.py). A SystemExit raised there leaves as a RuntimeError,
    and the run exited 1, not 143. Returns the function that arms it, which returns
    the signals sent."""
    from tensorflow.python.framework import errors_impl

    init, sent = errors_impl.InvalidArgumentError.__init__, []

    def signalled_init(self, *args, **kwargs):
        if not sent:
            sent.append(signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        init(self, *args, **kwargs)

    def arm() -> list[int]:
        monkeypatch.setattr(errors_impl.InvalidArgumentError, "__init__", signalled_init)
        return sent

    return arm


def tiny_module():
    """A SavedModel's worth (for the tests above): a variable and a traced function."""
    import tensorflow as tf

    module = tf.Module()
    module.v = tf.Variable(2.0)
    module.f = tf.function(lambda x: x * module.v, input_signature=[tf.TensorSpec([], tf.float32)])
    return module
