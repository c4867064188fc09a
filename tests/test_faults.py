"""Fault injection against the real trainer process: signals, kill -9, storage outages.

Each test asserts what was lost (at most one checkpoint interval of env steps) and
that the run ends whole: a checkpoint, an exported policy and an evaluation.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from bench.common import TINY_FLAGS
from tests.conftest import ROOT, ctrl_c_reaches_python, run_task
from tests.test_storage import Emulator
from trainer import evaluate, launch, start
from trainer.config import Config
from trainer.errors import UsageError
from trainer.rundir import RunDir

pytestmark = pytest.mark.slow

INTERVAL = 300  # env steps per iteration and per checkpoint in these runs
FLAGS = [*TINY_FLAGS, f"--collect_steps={INTERVAL}", f"--checkpoint_interval={INTERVAL}"]


class Trainer:
    """`python -m trainer.task` in its own process group, its stderr read as it comes.

    `prefix` goes before the command (WITHOUT_DAC_OVERRIDE).
    """

    def __init__(self, *args: str, env=None, prefix=()):
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            [*prefix, sys.executable, "-m", "trainer.task", *args],
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, **(env or {})},
            preexec_fn=ctrl_c_reaches_python,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def last_step(self) -> int:
        steps = [
            int(m.group(1).replace(",", ""))
            for m in map(re.compile(r"^step ([\d,]+)/").match, self.lines)
            if m
        ]
        return max(steps, default=0)

    def wait_for_step(self, step: int, timeout: float = 300) -> None:
        deadline = time.time() + timeout
        while self.last_step() < step:
            assert self.proc.poll() is None, "\n".join(self.lines[-30:])
            assert time.time() < deadline, "\n".join(self.lines[-30:])
            time.sleep(0.2)

    def wait(self, timeout: float = 120) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=10)  # every line the process wrote, read
        return code


def _checkpoint_steps(run_dir) -> list[int]:
    names = os.listdir(os.path.join(run_dir, "checkpoints"))
    return sorted(int(n[5:-6]) for n in names if n.startswith("ckpt-") and n.endswith(".index"))


def _policy_step(run_dir) -> int:
    """The train step of the run's exported policy (loaded here: a Python of its own
    cost each call 5-8 s of importing TensorFlow; test_train loads one without trainer
    code)."""
    import tensorflow as tf
    import tensorflow_probability  # noqa: F401  (the policy's distribution ops)

    return int(tf.saved_model.load(os.path.join(run_dir, "policy")).get_train_step())


def _finish(logdir, run: str, total: int, env=None, extra=()) -> str:
    """Runs the same run again to `total` steps (`extra`: more flags); returns its stderr."""
    result = run_task(
        f"--logdir={logdir}", f"--run={run}", *FLAGS, *extra, f"--total_steps={total}", env=env
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run_dir = os.path.join(logdir, run)
    assert json.load(open(os.path.join(run_dir, "eval.json")))["env_steps"] >= total
    assert _policy_step(run_dir) >= total
    return result.stderr


@pytest.mark.parametrize("signum, code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_saves_exports_and_resumes(tmp_path, signum, code):
    trainer = Trainer(
        f"--logdir={tmp_path}",
        "--run=sig",
        *FLAGS,
        "--total_steps=100000",
        "--checkpoint_interval=100000",
    )
    trainer.wait_for_step(2 * INTERVAL)
    if signum == signal.SIGINT:
        os.killpg(trainer.proc.pid, signum)  # Ctrl-C reaches the whole process group
    else:
        trainer.proc.send_signal(signum)  # Kubernetes signals only the main process
    # How long this takes against a pod's grace period: bench/sigterm.py.
    assert trainer.wait(timeout=600) == code, "\n".join(trainer.lines[-20:])
    run_dir = tmp_path / "sig"
    saved = _checkpoint_steps(run_dir)[-1]
    assert saved >= trainer.last_step() - INTERVAL
    assert _policy_step(run_dir) == saved
    if signum == signal.SIGTERM:  # the same save either way: one resume shows it resumes
        stderr = _finish(tmp_path, "sig", saved + INTERVAL)
        assert f"from env step {saved:,}" in stderr


def _sac_state(run_dir) -> dict[str, float]:
    """What a SAC run's newest checkpoint holds of its learning state."""
    import tensorflow as tf

    reader = tf.train.load_checkpoint(os.path.join(run_dir, "checkpoints"))
    names = {
        "env_steps": "env_steps",
        "gradient_steps": "train_step",
        "replay_last_id": "replay_buffer/_last_id",
        "critic_adam_steps": "agent/_critic_optimizer/iter",
        "alpha_adam_steps": "agent/_alpha_optimizer/iter",
        "log_alpha": "agent/_log_alpha",
    }
    return {
        key: float(reader.get_tensor(f"{name}/.ATTRIBUTES/VARIABLE_VALUE"))
        for key, name in names.items()
    }


def test_a_sac_run_stopped_by_sigterm_resumes_with_its_replay_buffer_optimizers_and_alpha(
    tmp_path,
):
    # tf-agents' own SAC example starts its replay buffer over on a restart.
    sac = ["--agent=sac", "--learning_starts=128", "--collect_steps=64", "--batch_size=32"]
    flags = [f"--logdir={tmp_path}", "--run=sac", *TINY_FLAGS, *sac]
    trainer = Trainer(*flags, "--total_steps=100000", "--checkpoint_interval=100000")
    trainer.wait_for_step(512)
    trainer.proc.send_signal(signal.SIGTERM)
    assert trainer.wait(timeout=600) == 143, "\n".join(trainer.lines[-20:])
    run_dir = tmp_path / "sac"
    stopped = _sac_state(run_dir)
    steps = int(stopped["env_steps"])
    # Every step counted is in the buffer (2 envs: a row per env per step); SIGTERM may
    # land after an iteration was added and before it was counted.
    assert steps // 2 - 1 <= stopped["replay_last_id"] <= steps // 2 - 1 + 32
    assert stopped["gradient_steps"] == stopped["critic_adam_steps"] >= steps - 64
    stderr = _finish(tmp_path, "sac", steps + 128, extra=sac)
    assert f"from env step {steps:,}" in stderr
    resumed = _sac_state(run_dir)
    # The buffer goes on from its rows, and the optimizers count on from where they
    # stopped: 128 steps more, not 128 in all.
    assert resumed["replay_last_id"] == stopped["replay_last_id"] + 64
    for counter in ("gradient_steps", "critic_adam_steps", "alpha_adam_steps"):
        assert resumed[counter] == stopped[counter] + 128, counter
    assert resumed["log_alpha"] != stopped["log_alpha"]  # and alpha learned on from there
    train = evaluate.read_scalars(str(run_dir / "train"))
    assert {"Losses/critic_loss", "Losses/actor_loss", "Losses/alpha_loss"} <= set(train)


def test_kill_9_resumes_from_the_last_complete_checkpoint(tmp_path):
    rng = random.Random(1)
    run_dir = tmp_path / "k9"
    lost = []  # (last checkpoint, last step TensorBoard holds) of each kill
    for attempt in range(2):
        trainer = Trainer(f"--logdir={tmp_path}", "--run=k9", *FLAGS, "--total_steps=100000")
        trainer.wait_for_step((attempt + 1) * 2 * INTERVAL)
        time.sleep(rng.uniform(0.0, 2.0))  # anywhere in an iteration, a checkpoint write included
        os.killpg(trainer.proc.pid, signal.SIGKILL)
        trainer.wait()
        # The reach is read from the events, not the progress line: a kill between an
        # update's summaries and its progress line leaves TensorBoard an iteration ahead.
        written = evaluate.read_scalars(str(run_dir / "train"))["Losses/total_loss"]
        lost.append((_checkpoint_steps(run_dir)[-1], max(step for step, _ in written)))
    latest, reached = lost[-1]
    assert reached - latest <= INTERVAL
    # A checkpoint cut short before TensorFlow's pointer moved must never be loaded.
    for suffix in (".index", ".data-00000-of-00001"):
        (run_dir / "checkpoints" / f"ckpt-999999{suffix}").write_bytes(b"cut short")
    stderr = _finish(tmp_path, "k9", latest + INTERVAL)
    assert f"from env step {latest:,}" in stderr
    losses = evaluate.read_scalars(str(run_dir / "train"))["Losses/total_loss"]
    steps = [step for step, _ in losses]
    # TensorBoard repeats steps only inside the intervals the kills lost.
    for step in {s for s in steps if steps.count(s) > 1}:
        assert any(saved < step <= last for saved, last in lost), (step, lost)
    assert max(steps) == latest + INTERVAL


def test_corrupt_newest_checkpoint_falls_back_to_an_older_one(tiny_run, tmp_path):
    """Through a real resume; which damage is skipped, and the error when none restores,
    are test_record's (in-process)."""
    import shutil

    run_dir = tmp_path / "tiny"
    shutil.copytree(tiny_run, run_dir)
    assert _checkpoint_steps(run_dir) == [300, 600]
    data = run_dir / "checkpoints" / "ckpt-600.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])  # truncated
    stderr = _finish(tmp_path, "tiny", 3 * INTERVAL)
    skipped = [line for line in stderr.splitlines() if line.startswith("Skipping checkpoint")]
    assert len(skipped) == 1 and "ckpt-600" in skipped[0], stderr
    assert "from env step 300" in stderr


def test_env_processes_die_with_the_trainer(tmp_path):
    trainer = Trainer(f"--logdir={tmp_path}", "--run=orphans", *FLAGS, "--total_steps=100000")
    trainer.wait_for_step(2 * INTERVAL)
    seen = len(trainer.lines)
    trainer.proc.kill()  # the trainer alone, as the kernel's OOM killer would
    trainer.wait()
    # The env processes are in the trainer's process group; they die at once (their
    # PR_SET_PDEATHSIG), and the bound is only against a hang.
    deadline = time.time() + 60
    while True:
        try:
            os.killpg(trainer.proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline, "env processes outlived the trainer"
        time.sleep(0.05)
    time.sleep(0.5)  # anything they printed on the way out has arrived
    assert not [line for line in trainer.lines[seen:] if "Traceback" in line or "Error" in line]


def _children(pid: int) -> list[int]:
    """Pids whose parent is `pid` (field 4 of /proc/PID/stat, after the command's parens)."""
    found = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
            if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                found.append(int(entry))
    return found


def test_env_processes_die_quietly_with_a_trainer_killed_during_their_start_up(tmp_path):
    """kill -9 while the env processes still import TensorFlow. They used to ask for
    PR_SET_PDEATHSIG only after those imports, when their parent was init already: they
    lived on for seconds, then failed on the broken pipe (4 tracebacks)."""
    trainer = Trainer(f"--logdir={tmp_path}", "--run=early", *FLAGS, "--total_steps=100000")
    deadline = time.time() + 300
    while not any(line.startswith("Starting 2 env processes") for line in trainer.lines):
        assert trainer.proc.poll() is None and time.time() < deadline, trainer.lines[-20:]
        time.sleep(0.05)
    while len(_children(trainer.proc.pid)) < 2:  # both spawned, still importing
        assert trainer.proc.poll() is None and time.time() < deadline, trainer.lines[-20:]
        time.sleep(0.01)
    time.sleep(0.3)  # the trainer has written each child's start-up data to its pipe
    seen = len(trainer.lines)
    trainer.proc.kill()
    trainer.wait()
    while True:  # a bound against a hang, not a timing promise
        try:
            os.killpg(trainer.proc.pid, 0)
        except ProcessLookupError:
            break
        assert time.time() < deadline + 120, "env processes outlived the trainer"
        time.sleep(0.1)
    time.sleep(0.5)  # anything they printed on the way out has arrived
    assert trainer.lines[seen:] == [], trainer.lines[seen:]


def test_policy_from_another_env_is_refused(tiny_run, tmp_path):
    policy = os.path.join(tiny_run, "policy")  # a KukaGrasp-v0 policy
    env = "--env_id=InvertedPendulumBulletEnv-v0"
    render = run_task(f"--logdir={tmp_path}", "render", f"--policy={policy}", env, "--width=64")
    assert render.returncode == 2
    last = render.stderr.strip().splitlines()[-1]
    assert last.startswith("error: the policy in") and "does not fit InvertedPendulum" in last
    assert not os.listdir(tmp_path)


@pytest.fixture
def emulator(tmp_path):
    server = Emulator(tmp_path / "gcs-data")
    server.start()
    yield server
    server.stop()


NO_CREDENTIALS = {
    "STORAGE_EMULATOR_HOST": "",
    "GOOGLE_APPLICATION_CREDENTIALS": "",
    "GCE_METADATA_HOST": "127.0.0.1:9",
    "GCE_METADATA_IP": "127.0.0.1:9",
}


@pytest.mark.parametrize(
    "logdir, words, use_emulator",
    [
        ("gs://Bad_Bucket/x", "malformed gs:// path", True),
        ("gs://missing-bucket/runs", "bucket gs://missing-bucket does not exist", True),
        ("gs://some-bucket/runs", "no Google Cloud credentials", False),
    ],
)
def test_bad_storage_inputs(tmp_path, emulator, logdir, words, use_emulator):
    env = {"STORAGE_EMULATOR_HOST": emulator.url}
    if not use_emulator:
        env = {**NO_CREDENTIALS, "HOME": str(tmp_path), "CLOUDSDK_CONFIG": str(tmp_path)}
    result = run_task(f"--logdir={logdir}", "--run=r", env=env, timeout=120)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and words in lines[0], lines


@pytest.fixture
def bucket(emulator, monkeypatch):
    """A client of the emulator (also for child processes) and its bucket `kuka`."""
    from trainer import storage

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    client = storage.make_client()
    client.create_bucket("kuka")
    return client


def _gcs_trainer(tmp_path, run: str, *args: str) -> Trainer:
    return Trainer(
        "--logdir=gs://kuka/runs",
        f"--staging_dir={tmp_path / 'stage'}",
        f"--run={run}",
        *FLAGS,
        *args,
    )


def test_storage_outage_during_training(tmp_path, emulator, bucket):
    trainer = _gcs_trainer(tmp_path, "outage", "--total_steps=2400")
    trainer.wait_for_step(INTERVAL)
    deadline = time.time() + 120
    marker = bucket.bucket("kuka").blob("runs/outage/SYNCED.json")
    while not marker.exists() and time.time() < deadline:
        time.sleep(0.5)
    emulator.stop()
    trainer.wait_for_step(4 * INTERVAL)  # training goes on while storage is down
    time.sleep(3)
    emulator.start()
    # The library's retry or the syncer's own pauses carried the uploads over.
    assert trainer.wait(timeout=600) == 0, "\n".join(trainer.lines[-30:])
    result = json.loads(bucket.bucket("kuka").blob("runs/outage/eval.json").download_as_text())
    assert result["env_steps"] == 2400
    names = {b.name for b in bucket.list_blobs("kuka", prefix="runs/outage/")}
    assert "runs/outage/checkpoints/ckpt-2400.index" in names


def test_sigterm_uploads_a_gcs_run_before_exiting(tmp_path, bucket):
    trainer = _gcs_trainer(
        tmp_path, "evicted", "--total_steps=100000", "--checkpoint_interval=100000"
    )
    trainer.wait_for_step(2 * INTERVAL)
    trainer.proc.send_signal(signal.SIGTERM)
    # A bound against a hang only; how long it takes against a pod's grace period is
    # bench/sigterm.py's to measure.
    assert trainer.wait(timeout=120) == 143, "\n".join(trainer.lines[-20:])
    saved = _checkpoint_steps(tmp_path / "stage" / "evicted")[-1]
    names = {b.name for b in bucket.list_blobs("kuka", prefix="runs/evicted/")}
    assert f"runs/evicted/checkpoints/ckpt-{saved}.index" in names
    assert {"runs/evicted/SYNCED.json", "runs/evicted/policy/saved_model.pb"} <= names


def test_a_second_trainer_on_a_run_is_refused_naming_the_first(tmp_path):
    # --total_steps after FLAGS, which hold the tiny run's 600: the first trainer must
    # still be training when the second starts, however loaded the machine.
    first = Trainer(f"--logdir={tmp_path}", "--run=busy", *FLAGS, "--total_steps=1000000")
    try:
        first.wait_for_step(INTERVAL)
        second = run_task(f"--logdir={tmp_path}", "--run=busy", *FLAGS, "--total_steps=1000000")
        assert second.returncode == 2
        (line,) = [x for x in second.stderr.splitlines() if x.startswith("error:")]
        assert f"run busy is being trained by pid {first.proc.pid} on " in line
        assert "choose another --run" in line
        before = open(tmp_path / "busy" / "command.txt").read()
        assert before.count("--run=busy") == 1  # the refused trainer wrote nothing
    finally:
        first.proc.kill()  # kill -9: the kernel releases the lock with the process
        first.wait()
    RunDir(str(tmp_path / "busy")).lock().close()  # free again


@pytest.fixture
def small_disk(tmp_path):
    """A 600 KB tmpfs: a tiny run fills it during its second checkpoint or export."""
    mount = tmp_path / "disk"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=600k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {made.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def test_full_disk_is_one_line_and_the_run_resumes_once_there_is_room(small_disk):
    flags = [f"--logdir={small_disk}", "--run=full", "--total_steps=1200", *FLAGS[1:]]
    flags = [f for f in flags if not f.startswith("--num_envs")] + ["--num_envs=1"]
    full = run_task(*flags, timeout=300)
    assert full.returncode == 1, full.stderr[-3000:]
    errors = [x for x in full.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in full.stderr, full.stderr[-3000:]
    assert errors[0].startswith(f"error: no space left on the disk of {small_disk / 'full'} (")
    last = re.search(r"the last intact checkpoint is (ckpt-\d+)", errors[0]).group(1)
    # Room again: the same command resumes from that checkpoint and finishes.
    subprocess.run(["mount", "-o", "remount,size=200m", str(small_disk)], check=True)
    resumed = run_task(*flags, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from env step {int(last[5:]):,}" in resumed.stderr
    assert json.loads((small_disk / "full" / "eval.json").read_text())["env_steps"] == 1200


def _fill(mount) -> None:
    """Writes into `mount` until its disk is full (unbuffered: nothing left to flush)."""
    with open(mount / "filler", "wb", buffering=0) as f, contextlib.suppress(OSError):
        while True:
            f.write(b"\0" * 4096)


def _one_error(result, code: int) -> str:
    """The one `error:` line of a command that exited `code`, with no traceback."""
    assert result.returncode == code, result.stderr[-3000:]
    errors = [x for x in result.stderr.splitlines() if x.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr[-3000:]
    return errors[0]


def test_a_full_disk_at_the_start_of_a_new_or_resumed_run_is_one_line(small_disk, tiny_run):
    """A new run fails at the run lock's flush, a resume at writing command.txt: each was
    a traceback (25 and 30 lines); one line naming the run directory, exit 1, now."""
    import shutil

    subprocess.run(["mount", "-o", "remount,size=20m", str(small_disk)], check=True)
    shutil.copytree(tiny_run, small_disk / "tiny", ignore=shutil.ignore_patterns("render"))
    (small_disk / ".tiny.lock").write_text("{}")  # a lock the earlier trainer left
    _fill(small_disk)
    flags = [f"--logdir={small_disk}", *TINY_FLAGS]
    for run, last in (("tiny", "ckpt-600"), ("fresh", "none yet")):
        result = run_task(*flags, f"--run={run}", "--total_steps=900", timeout=300)
        line = _one_error(result, 1)
        assert line.startswith(f"error: no space left on the disk of {small_disk / run} ("), line
        assert f"the last intact checkpoint is {last};" in line


def test_a_render_on_a_full_disk_is_one_line(small_disk):
    """ffmpeg's "No space left on device" reached Python only as a broken pipe, which the
    full-disk check did not recognise: a 90-line traceback."""
    _fill(small_disk)  # directories take no room on a tmpfs; the film does
    result = run_task(
        f"--logdir={small_disk}",
        "render",
        "--policy=random",
        "--episodes=1",
        "--width=96",
        "--height=72",
        "--fps=10",
        "--frame_stride=40",
        timeout=300,
    )
    line = _one_error(result, 1)
    assert line.startswith(f"error: no space left on the disk of {small_disk / 'random-policy'}")
    assert not os.path.exists(small_disk / "random-policy" / "render")


def test_a_taken_port_is_refused_naming_it():
    """gRPC listens with SO_REUSEPORT, so a second Reverb server on a port used to start
    beside the first; a port another program held failed inside gRPC ("Failed to
    BuildAndStart gRPC server") without naming it."""
    with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as grpc_like:
        grpc_like.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as gRPC binds
        grpc_like.bind(("::", 0))
        grpc_like.listen()
        port = grpc_like.getsockname()[1]
        with pytest.raises(ValueError, match=f"^port {port} is taken"):
            launch.check_port_free(port)
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        port = other.getsockname()[1]
        result = run_task("reverb", "--run=r", f"--port={port}", timeout=120)
        line = _one_error(result, 2)
        assert line.startswith(f"error: port {port} is taken"), line
    launch.check_port_free(port)  # free again


# Root writes anywhere: run as root without CAP_DAC_OVERRIDE, permission bits hold it too.
WITHOUT_DAC_OVERRIDE = [
    "setpriv",
    "--bounding-set=-dac_override,-dac_read_search",
    "--inh-caps=-all",
]


def _without_dac_override() -> list[str]:
    if os.geteuid() != 0:
        return []  # permission bits bind this user already
    made = subprocess.run([*WITHOUT_DAC_OVERRIDE, "true"], capture_output=True)
    if made.returncode != 0:
        pytest.skip(f"cannot drop CAP_DAC_OVERRIDE here: {made.stderr.decode().strip()}")
    return WITHOUT_DAC_OVERRIDE


def _chmod_tree(root, remove: int = 0, add: int = 0) -> None:
    for path, dirs, files in os.walk(root):
        for name in [path, *(os.path.join(path, f) for f in dirs + files)]:
            os.chmod(name, (os.stat(name).st_mode & ~remove) | add)


def test_a_log_directory_turning_read_only_mid_run_is_one_line_and_resumes(tmp_path):
    """The run directory made read-only mid-run (by permissions: the trainer runs without
    CAP_DAC_OVERRIDE): 100 lines of chained PermissionDeniedError before, one line and
    exit 1 now; the checkpoints are intact and the same command resumes."""
    prefix = _without_dac_override()
    trainer = Trainer(
        f"--logdir={tmp_path}", "--run=ro", *FLAGS, "--total_steps=100000", prefix=prefix
    )
    trainer.wait_for_step(2 * INTERVAL)
    _chmod_tree(tmp_path / "ro", remove=0o222)
    assert trainer.wait(timeout=600) == 1, "\n".join(trainer.lines[-30:])
    errors = [x for x in trainer.lines if x.startswith("error:")]
    assert len(errors) == 1 and not any("Traceback" in x for x in trainer.lines), trainer.lines
    assert errors[0].startswith(f"error: cannot write in {tmp_path / 'ro'} (")
    assert "Permission denied" in errors[0]
    last = re.search(r"the last intact checkpoint is ckpt-(\d+);", errors[0]).group(1)
    _chmod_tree(tmp_path / "ro", add=0o200)
    assert f"from env step {int(last):,}" in _finish(tmp_path, "ro", int(last) + INTERVAL)


def test_a_run_directory_of_another_user_is_refused_in_one_line(tmp_path):
    """It used to fail writing in it: a PermissionError traceback, exit 1."""
    prefix = _without_dac_override()
    theirs = tmp_path / "theirs"
    theirs.mkdir()
    RunDir(str(theirs)).save_config(Config(run="theirs"))
    os.chown(theirs, 65534, 65534)  # nobody's
    os.chmod(theirs, 0o755)
    result = subprocess.run(
        [*prefix, sys.executable, "-m", "trainer.task", f"--logdir={tmp_path}", "--run=theirs"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    line = _one_error(result, 2)
    assert line == (
        f"error: cannot write to run directory {theirs}: Permission denied (owned by uid "
        "65534); run as a user who may write there, or choose another --run"
    )
    assert sorted(os.listdir(theirs)) == ["config.json"]


def test_a_dangling_symlink_or_a_file_as_run_directory_is_refused(tmp_path):
    """A dangling symlink failed in os.makedirs (FileExistsError traceback); a file in
    listdir (NotADirectoryError). Both are bad input: UsageError, exit 2."""
    os.symlink(tmp_path / "elsewhere", tmp_path / "gone")
    (tmp_path / "afile").write_text("")
    for run, words in (("gone", "is a symlink to"), ("afile", "is not a directory")):
        with pytest.raises(UsageError, match=words):
            start.prepare(Config(logdir=str(tmp_path), run=run), "cmd")
    assert not (tmp_path / "elsewhere").exists()


def test_every_test_the_reliability_table_names_exists():
    """docs/reliability.md promises what tests prove: each test it names must exist."""
    text = open(os.path.join(ROOT, "docs", "reliability.md")).read()
    names = set(re.findall(r"\b(test_[a-z0-9_]+)\b", text)) - {"test_faults", "test_task"}
    sources = "".join(
        open(os.path.join(ROOT, "tests", f)).read()
        for f in os.listdir(os.path.join(ROOT, "tests"))
        if f.endswith(".py")
    )
    defined = set(re.findall(r"^def (test_[a-z0-9_]+)", sources, re.M))
    modules = {f[:-3] for f in os.listdir(os.path.join(ROOT, "tests"))}
    assert len(names) > 20
    assert names - defined - modules == set()
