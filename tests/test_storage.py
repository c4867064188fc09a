"""Google Cloud Storage against a real storage server (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time

import pytest

from tests.conftest import ROOT, TINY_FLAGS, run_task
from trainer import evaluate, storage

emulator = pytest.importorskip("gcp_storage_emulator.server")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """gcp-storage-emulator on a loopback port, keeping its data on disk across restarts."""

    def __init__(self, data_dir):
        self.port, self.data_dir = _free_port(), str(data_dir)
        self.url = f"http://127.0.0.1:{self.port}"
        self._server = None

    def start(self):
        self._server = emulator.create_server("127.0.0.1", self.port, data_dir=self.data_dir)
        self._server.start()

    def stop(self):
        self._server.stop()


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """A running emulator, the client environment pointed at it, and a fresh client."""
    server = Emulator(tmp_path / "gcs-data")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    try:
        yield server, storage.make_client()
    finally:
        server.stop()


def _objects(client, bucket: str, prefix: str = "") -> dict:
    return {b.name: b for b in client.list_blobs(bucket, prefix=prefix)}


@pytest.mark.parametrize(
    "url, parsed",
    [
        ("gs://b-1", ("b-1", "")),
        ("gs://bucket/a/b/", ("bucket", "a/b")),
        ("gs://my.bkt/x", ("my.bkt", "x")),
    ],
)
def test_parse_url(url, parsed):
    assert storage.parse_url(url) == parsed


@pytest.mark.parametrize("url", ["gs://", "gs://B", "s3://bucket", "gs://bucket//x", "bucket/x"])
def test_malformed_urls(url):
    with pytest.raises(ValueError, match="malformed gs:// path"):
        storage.parse_url(url)


def test_bucket_missing_created_then_usable(gcs):
    _, client = gcs
    with pytest.raises(storage.StorageError, match="does not exist"):
        storage.check_bucket(client, "kuka-runs")
    assert storage.check_bucket(client, "kuka-runs", create=True).created
    found = storage.check_bucket(client, "kuka-runs")
    assert found.exists and not found.created


class _Forbidding(http.server.BaseHTTPRequestHandler):
    """Answers every request as GCS does to credentials without access to a bucket."""

    def do_GET(self):  # noqa: N802
        body = json.dumps({"error": {"code": 403, "message": "denied"}}).encode()
        self.send_response(403)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_bucket_without_access(monkeypatch):
    # The emulator has no access control; a loopback server gives GCS's 403 answer.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Forbidding)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    try:
        with pytest.raises(storage.StorageError, match="exists but these credentials may not"):
            storage.check_bucket(storage.make_client(), "someone-elses")
    finally:
        server.shutdown()


class _ObjectAdminOnly(_Forbidding):
    """GCS as roles/storage.objectAdmin sees it: objects may be listed, the bucket not read."""

    def do_GET(self):  # noqa: N802
        if not self.path.split("?")[0].endswith("/o"):
            return super().do_GET()  # bucket metadata needs storage.buckets.get
        body = json.dumps({"kind": "storage#objects", "items": []}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def test_bucket_check_needs_only_object_permissions(monkeypatch):
    # The pods hold roles/storage.objectAdmin only, which lacks storage.buckets.get.
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ObjectAdminOnly)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{server.server_port}")
    try:
        assert storage.check_bucket(storage.make_client(), "kuka-runs").exists
    finally:
        server.shutdown()


def test_no_credentials(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("STORAGE_EMULATOR", "GOOGLE_", "CLOUDSDK"))
    }
    # No key file, no gcloud login, and a metadata server that refuses at once.
    env.update(
        HOME=str(tmp_path),
        CLOUDSDK_CONFIG=str(tmp_path),
        GCE_METADATA_HOST="127.0.0.1:9",
        GCE_METADATA_IP="127.0.0.1:9",
    )
    result = subprocess.run(
        [sys.executable, "-m", "deploy.bucket", "gs://kuka-runs"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: no Google Cloud credentials: run `gcloud auth application-default login` or "
        "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
    )


def _write(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def test_upload_order_marker_and_download(gcs, tmp_path):
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / "checkpoints" / "ckpt-1.index", "index")
    _write(local / "checkpoints" / "checkpoint", 'model_checkpoint_path: "ckpt-1"')
    _write(local / "policy.tmp" / "half", "staging dirs are not uploaded")
    _write(local / "render" / "a" / "video.mp4", "mp4")
    mirror = storage.RunMirror(client, str(local), "gs://runs/exp/r1")
    assert not mirror.download()  # nothing complete up there yet
    assert mirror.upload() == 3
    objects = _objects(client, "runs")
    assert set(objects) == {
        "exp/r1/checkpoints/ckpt-1.index",
        "exp/r1/checkpoints/checkpoint",
        "exp/r1/render/a/video.mp4",
        "exp/r1/SYNCED.json",
    }
    assert objects["exp/r1/render/a/video.mp4"].content_type == "video/mp4"
    assert mirror.upload() == 0  # unchanged files are not sent again
    copy = storage.RunMirror(client, str(tmp_path / "copy"), "gs://runs/exp/r1")
    assert copy.download()
    assert (tmp_path / "copy" / "checkpoints" / "checkpoint").read_text().startswith("model")
    assert storage.latest_run(client, "gs://runs/exp") == "r1"


def test_a_mirror_deletes_only_what_it_uploaded(gcs, tmp_path):
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / "checkpoints" / "ckpt-1.index", "old")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    mirror.upload()
    # Another writer's file under the run (once: a collector's TensorBoard events).
    client.bucket("runs").blob("r/train/collector-0/events").upload_from_string("theirs")
    os.remove(local / "checkpoints" / "ckpt-1.index")  # the run drops an old checkpoint
    _write(local / "checkpoints" / "ckpt-2.index", "new")
    mirror.upload()
    assert set(_objects(client, "runs", "r/")) == {
        "r/checkpoints/ckpt-2.index",
        "r/train/collector-0/events",
        "r/SYNCED.json",
    }


def test_marker_is_written_only_after_the_bucket_is_checked(gcs, tmp_path, capsys):
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / "config.json", "{}")
    _write(local / "checkpoints" / "ckpt-1.index", "index")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    mirror.upload()
    # Objects vanish server-side (or are corrupted) while the uploader thinks them sent.
    client.bucket("runs").blob("r/config.json").delete()
    client.bucket("runs").blob("r/checkpoints/ckpt-1.index").upload_from_string("other")
    mirror.upload()
    assert "Re-uploading 2 file(s) missing or different" in capsys.readouterr().err
    objects = _objects(client, "runs", "r/")
    assert objects["r/config.json"].download_as_text() == "{}"
    assert objects["r/checkpoints/ckpt-1.index"].download_as_text() == "index"
    marker = json.loads(objects["r/SYNCED.json"].download_as_text())
    assert marker["verified"] is True and marker["files"] == 2


def test_outage_retries_then_catches_up(tmp_path, monkeypatch):
    server = Emulator(tmp_path / "gcs-data")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    client = storage.make_client()
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / "a.txt", "first")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r", retry_deadline=2)
    mirror.upload()
    marker = json.loads(client.bucket("runs").blob("r/SYNCED.json").download_as_text())

    server.stop()
    _write(local / "b.txt", "written while storage is down")
    messages = []
    syncer = storage.Syncer(mirror, log=messages.append, final_deadline=120)
    syncer.request()
    deadline = time.time() + 60
    while not syncer.failures and time.time() < deadline:
        time.sleep(0.2)
    assert syncer.failures >= 1 and "will retry" in messages[0]
    server.start()
    syncer.close()
    assert "r/b.txt" in _objects(client, "runs")
    newer = json.loads(client.bucket("runs").blob("r/SYNCED.json").download_as_text())
    assert newer["time"] > marker["time"]

    server.stop()
    _write(local / "c.txt", "storage never comes back")
    failing = storage.Syncer(mirror, log=messages.append, final_deadline=3)
    with pytest.raises(storage.StorageError, match="could not upload the run"):
        failing.close()
    server.start()
    objects = _objects(client, "runs")
    assert "r/c.txt" not in objects
    last = json.loads(client.bucket("runs").blob("r/SYNCED.json").download_as_text())
    assert last == newer  # nothing incomplete was marked complete
    server.stop()


@pytest.mark.slow
def test_train_resume_and_render_through_gcs(gcs, tmp_path):
    server, client = gcs
    client.create_bucket("kuka")
    env = {"STORAGE_EMULATOR_HOST": server.url}
    staging = tmp_path / "staging"
    flags = ["--logdir=gs://kuka/runs", f"--staging_dir={staging}", "--run=cloud", *TINY_FLAGS]
    first = run_task(*flags, env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    objects = _objects(client, "kuka", "runs/cloud/")
    for name in (
        "SYNCED.json",
        "config.json",
        "eval.json",
        "checkpoints/checkpoint",
        "checkpoints/ckpt-600.index",
        "policy/saved_model.pb",
    ):
        assert f"runs/cloud/{name}" in objects, name
    assert any(n.startswith("runs/cloud/train/events.out.tfevents") for n in objects)
    assert "runs/cloud/.lease.json" not in objects  # released once everything was up

    shutil.rmtree(staging)
    second = run_task(*flags[: -len(TINY_FLAGS)], *TINY_FLAGS, "--total_steps=1200", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Downloaded gs://kuka/runs/cloud" in second.stderr
    assert "from env step 600" in second.stderr
    result = json.loads(client.bucket("kuka").blob("runs/cloud/eval.json").download_as_text())
    assert result["env_steps"] == 1200

    shutil.rmtree(staging)
    render = run_task(
        "render",
        "--logdir=gs://kuka/runs",
        f"--staging_dir={staging}",
        "--episodes=1",
        "--width=64",
        "--height=48",
        "--frame_stride=50",
        env=env,
    )
    assert render.returncode == 0, render.stderr[-3000:]
    videos = [
        b for n, b in _objects(client, "kuka", "runs/cloud/render/").items() if n.endswith(".mp4")
    ]
    assert len(videos) == 1 and videos[0].content_type == "video/mp4"


@pytest.mark.slow
def test_distributed_run_keeps_every_events_file_in_the_bucket(gcs, tmp_path):
    """Two collectors and a learner on gs://, resumed: nothing collected is lost.

    Collectors write only to Reverb; their episodes reach the learner's summaries, so
    the learner's mirror is the one writer of the run (it once deleted the
    collectors' own event files, and their gs:// writers hung against the emulator).
    """
    server, client = gcs
    client.create_bucket("kuka")
    env = {"STORAGE_EMULATOR_HOST": server.url}
    staging = tmp_path / "staging"
    flags = [
        "distributed",
        "--collectors=2",
        "--logdir=gs://kuka/runs",
        f"--staging_dir={staging}",
        "--run=dist",
        "--num_envs=1",
        "--collect_steps=1024",
        "--checkpoint_interval=1024",
        "--eval_interval=0",
        "--eval_episodes=2",
        "--actor_layers=16",
        "--value_layers=16",
    ]
    first = run_task(*flags, "--total_steps=3072", env=env, timeout=900)
    assert first.returncode == 0, first.stderr[-3000:]
    shutil.rmtree(staging)  # a new machine: the second part starts from the bucket
    second = run_task(*flags, "--total_steps=5120", env=env, timeout=900)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "from env step 3,072" in second.stderr

    local = tmp_path / "copy"
    assert storage.RunMirror(client, str(local), "gs://kuka/runs/dist").download()
    events = sorted(p.name for p in (local / "train").glob("events.out.tfevents.*"))
    assert len(events) == 2  # the learner's, from each part
    scalars = evaluate.read_scalars(str(local / "train"))
    returns = [step for step, _ in scalars["Metrics/AverageReturn"]]
    assert returns[0] <= 3072 < returns[-1] == 5120  # the collectors' episodes, both parts
    assert [s for s, _ in scalars["Metrics/EnvStepsPerSecond"]] == list(range(1024, 5121, 1024))
    assert json.loads((local / "eval.json").read_text())["env_steps"] == 5120


def test_lease_one_writer_per_run_across_machines(gcs):
    _, client = gcs
    bucket = client.create_bucket("runs")
    logs: list[str] = []
    first = storage.Lease(bucket, "r/.lease.json", {"host": "a", "pid": 1}, 2.0, logs.append)
    first.take()
    # A second machine while the first renews: it waits out the lease, sees it
    # renewed, and refuses in one line naming the holder.
    second = storage.Lease(bucket, "r/.lease.json", {"host": "b", "pid": 2}, 2.0, logs.append)
    renewing = threading.Event()

    def renew():
        while not renewing.wait(0.5):
            first.renew()

    renewer = threading.Thread(target=renew, daemon=True)
    renewer.start()
    with pytest.raises(storage.RunBusy, match="being trained by pid 1 on a"):
        second.take()
    renewing.set()
    renewer.join()
    assert logs[-1].startswith("The run's lease is held by pid 1 on a; waiting")
    # The first holder dies without releasing: the lease lapses and is taken over.
    second.take()
    held = json.loads(bucket.blob("r/.lease.json").download_as_text())
    assert (held["host"], held["pid"]) == ("b", 2)
    second.release()
    assert bucket.get_blob("r/.lease.json") is None
    # A mirror renews its lease at each full upload and never uploads or deletes it.
    assert storage.LEASE == ".lease.json"
