"""Google Cloud Storage against a real storage server (gcp-storage-emulator) on 127.0.0.1."""

from __future__ import annotations

import datetime
import http.server
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest
from google.api_core import exceptions as api_exceptions

from bench.common import TINY_FLAGS
from tests.conftest import ROOT, run_task
from tests.fakes import gcs_proxy
from trainer import evaluate, rundir, storage
from trainer.rundir import RunDir

emulator = pytest.importorskip("gcp_storage_emulator.server")
emulator_objects = pytest.importorskip("gcp_storage_emulator.handlers.objects")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    """gcp-storage-emulator on a loopback port, keeping its data on disk across restarts,
    reached through Cloud Storage's preconditions (tests/fakes/gcs_proxy.py).

    `url` is the proxy's: it outlives restarts of the emulator (answering 503 while it
    is down, as Cloud Storage does in an outage); `direct_url` is the emulator's own.
    """

    def __init__(self, data_dir):
        self.port, self.data_dir = _free_port(), str(data_dir)
        self.direct_url = f"http://127.0.0.1:{self.port}"
        self.proxy = gcs_proxy.PreconditionProxy(self.direct_url).start()
        self.url = self.proxy.url
        self._server = None

    def start(self):
        self._server = emulator.create_server("127.0.0.1", self.port, data_dir=self.data_dir)
        self._server.start()

    def stop(self):
        self._server.stop()

    def close(self):
        self.stop()
        self.proxy.stop()


@pytest.fixture
def gcs(tmp_path, monkeypatch):
    """A running emulator behind the proxy, the client environment pointed at it, a client."""
    server = Emulator(tmp_path / "gcs-data")
    server.start()
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", server.url)
    try:
        yield server, storage.make_client()
    finally:
        server.close()


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


# Writes against an object at generation `g` (metageneration `m`) that Cloud Storage
# refuses with 412 (https://cloud.google.com/storage/docs/request-preconditions).
STALE_WRITES = {
    "simple upload, stale generation": lambda b, g, m: b.blob("x").upload_from_string(
        "c", if_generation_match=g - 1
    ),
    "create-only upload of an existing object": lambda b, g, m: b.blob("x").upload_from_string(
        "c", if_generation_match=0
    ),
    "upload unless generation g": lambda b, g, m: b.blob("x").upload_from_string(
        "c", if_generation_not_match=g
    ),
    "resumable upload, stale generation": lambda b, g, m: b.blob(
        "x", chunk_size=256 * 1024
    ).upload_from_string(b"z" * 300_000, if_generation_match=g - 1),
    "metadata update, stale metageneration": lambda b, g, m: _patched(b, m + 1),
    "rewrite onto a stale destination": lambda b, g, m: b.copy_blob(
        b.blob("x"), b, "x", if_generation_match=g - 1
    ),
    "rewrite from a stale source": lambda b, g, m: b.copy_blob(
        b.blob("x"), b, "y", if_source_generation_match=g - 1
    ),
    "delete, stale generation": lambda b, g, m: b.blob("x").delete(if_generation_match=g - 1),
}


def _patched(bucket, metageneration: int):
    blob = bucket.get_blob("x")
    blob.metadata = {"k": "v"}
    blob.patch(if_metageneration_match=metageneration)


@pytest.mark.parametrize("write", sorted(STALE_WRITES))
def test_the_emulator_ignores_preconditions_the_proxy_enforces_them(gcs, monkeypatch, write):
    """Why tests/fakes/gcs_proxy.py exists: each of these writes succeeds on the emulator
    (2026.7.19) and fails with 412 conditionNotMet on Cloud Storage and the proxy."""
    server, client = gcs
    client.create_bucket("runs")

    def attempt(url: str) -> None:
        monkeypatch.setenv("STORAGE_EMULATOR_HOST", url)
        bucket = storage.make_client().bucket("runs")
        bucket.blob("x").upload_from_string("a")
        blob = bucket.get_blob("x")
        STALE_WRITES[write](bucket, blob.generation, blob.metageneration)

    attempt(server.direct_url)  # accepted
    with pytest.raises(api_exceptions.PreconditionFailed, match="conditionNotMet|pre-conditions"):
        attempt(server.url)


def test_the_proxy_keeps_what_cloud_storage_allows(gcs):
    _, client = gcs
    bucket = client.create_bucket("runs")
    bucket.blob("x").upload_from_string("a", if_generation_match=0)  # absent: created
    first = bucket.get_blob("x")
    bucket.blob("x").upload_from_string("b", if_generation_match=first.generation)
    second = bucket.get_blob("x")
    assert second.generation != first.generation  # a new generation on every write
    second.metadata = {"k": "v"}
    second.patch(if_metageneration_match=second.metageneration)
    assert bucket.get_blob("x").metageneration == second.metageneration
    with pytest.raises(api_exceptions.PreconditionFailed):  # no live object: it fails
        bucket.blob("gone").upload_from_string("c", if_generation_not_match=1)
    with pytest.raises(api_exceptions.NotModified):  # a read: 304, not 412
        bucket.blob("x").download_as_bytes(if_generation_not_match=second.generation)
    bucket.blob("x").delete(if_generation_match=second.generation)


def _write(path, text: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write(text)


def _leased_mirror_with_checkpoints_to_upload(client, local):
    """A run uploaded once under its lease (bucket `runs`, prefix `r`), then 12 new
    checkpoint files that the next upload has to send."""
    client.create_bucket("runs")
    _write(local / "config.json", "{}")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    mirror.take_lease({"host": "a", "pid": 1})
    mirror.upload()
    for i in range(12):
        _write(local / "checkpoints" / f"ckpt-{i}.index", str(i))
    return mirror


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


@pytest.mark.parametrize(
    "pointer, data",
    [
        ("checkpoints/checkpoint", "checkpoints/ckpt-{}.index"),
        ("teacher/checkpoints/checkpoint", "teacher/checkpoints/ckpt-{}.index"),  # camera
        ("dagger.json", "student/round-{}/weights.index"),  # a camera run's last round
    ],
)
def test_a_pointer_rewritten_during_an_upload_never_names_a_file_it_left_out(
    gcs, tmp_path, monkeypatch, pointer, data
):
    """TensorFlow writes a checkpoint's files, then rewrites its pointer, while an
    upload is under way. The CI once caught the bucket holding a pointer that named a
    checkpoint whose files that upload had not listed, and a pod resuming there skipped
    it: the pointer goes up as read before the files were listed."""
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / data.format(1), "one")
    _write(local / pointer, "names 1")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    put = mirror._put

    def training_goes_on(names):  # the next checkpoint lands while the data goes up
        _write(local / data.format(2), "two")
        _write(local / pointer, "names 2")
        return put(names)

    monkeypatch.setattr(mirror, "_put", training_goes_on)
    mirror.upload()
    objects = _objects(client, "runs", "r/")
    assert objects[f"r/{pointer}"].download_as_text() == "names 1"
    assert f"r/{data.format(1)}" in objects and f"r/{data.format(2)}" not in objects
    assert json.loads(objects["r/SYNCED.json"].download_as_text())["verified"]
    monkeypatch.setattr(mirror, "_put", put)
    mirror.upload()  # the next upload sends the new files, then the pointer naming them
    objects = _objects(client, "runs", "r/")
    assert objects[f"r/{pointer}"].download_as_text() == "names 2"
    assert f"r/{data.format(2)}" in objects


def _export(policy_dir, number: int) -> None:
    """A policy export as the trainer makes it: written beside, then swapped in."""

    def write(staging_dir):
        _write(os.path.join(staging_dir, "saved_model.pb"), f"graph {number}")
        _write(os.path.join(staging_dir, "variables", "variables.index"), f"index {number}")

    rundir.export_dir(str(policy_dir), write)


def test_files_changing_during_an_upload_still_get_the_run_its_marker(gcs, tmp_path, monkeypatch):
    """A run changes files while they go up: TensorBoard appends to its events file,
    and each checkpoint re-exports policy/. Checked against the files as they were by
    then, a full upload failed "still lacks ... after upload" whenever one changed
    between its upload and the check: a tiny gs:// run beside a training (load 2-3)
    trained 106,200 steps in 152 s with no SYNCED.json, every upload retried, so a new
    machine would have found nothing to resume. An upload sends the files as listed;
    an export swapped in meanwhile goes up whole with the next upload, never mixed."""
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    events = local / "train" / "events.out.tfevents.1"
    _write(events, "record 1;")
    _export(local / "policy", 1)
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    put, exports = mirror._put, iter(range(2, 100))

    def training_goes_on(names):  # every send is followed by a record and an export
        with open(events, "a") as f:
            f.write(" record;")
        _export(local / "policy", next(exports))
        return put(names)

    monkeypatch.setattr(mirror, "_put", training_goes_on)
    mirror.upload()
    objects = _objects(client, "runs", "r/")
    assert json.loads(objects["r/SYNCED.json"].download_as_text())["verified"]
    assert objects["r/train/events.out.tfevents.1"].download_as_text().startswith("record 1;")
    assert objects["r/policy/saved_model.pb"].download_as_text() == "graph 1"
    assert objects["r/policy/variables/variables.index"].download_as_text() == "index 1"
    assert set(mirror.pending()) >= {"policy/saved_model.pb", "policy/variables/variables.index"}
    monkeypatch.setattr(mirror, "_put", put)
    mirror.upload()  # the run stopped writing: now the bucket matches the local files
    objects = _objects(client, "runs", "r/")
    for name in ("train/events.out.tfevents.1", "policy/saved_model.pb"):
        assert objects[f"r/{name}"].download_as_text() == (local / name).read_text()
    assert mirror.pending() == []


def test_a_checkpoint_deleted_during_an_upload_still_goes_up_with_its_pointer(
    gcs, tmp_path, monkeypatch
):
    """A tiny run beside a training (775 steps/s, a checkpoint every 300) saved three
    more checkpoints during its first upload, and TensorFlow deleted the one the pointer
    named: the upload skipped its files, sent the pointer, and wrote the marker. A pod
    resuming there found "no checkpoint ... restores: ckpt-300". The files as listed go
    up, deleted or not."""
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    _write(local / "checkpoints" / "ckpt-1.index", "one")
    _write(local / "checkpoints" / "checkpoint", 'model_checkpoint_path: "ckpt-1"')
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    seed = mirror._seed

    def training_goes_on(files):  # after the listing, before anything is sent
        _write(local / "checkpoints" / "ckpt-4.index", "four")
        _write(local / "checkpoints" / "checkpoint", 'model_checkpoint_path: "ckpt-4"')
        os.remove(local / "checkpoints" / "ckpt-1.index")  # max_to_keep
        return seed(files)

    monkeypatch.setattr(mirror, "_seed", training_goes_on)
    mirror.upload()
    objects = _objects(client, "runs", "r/")
    assert (
        objects["r/checkpoints/checkpoint"].download_as_text() == 'model_checkpoint_path: "ckpt-1"'
    )
    assert objects["r/checkpoints/ckpt-1.index"].download_as_text() == "one"
    assert json.loads(objects["r/SYNCED.json"].download_as_text())["verified"]
    monkeypatch.setattr(mirror, "_seed", seed)
    mirror.upload()  # the new pointer goes up, and the checkpoint it no longer names goes
    objects = _objects(client, "runs", "r/")
    assert (
        objects["r/checkpoints/checkpoint"].download_as_text() == 'model_checkpoint_path: "ckpt-4"'
    )
    assert "r/checkpoints/ckpt-4.index" in objects and "r/checkpoints/ckpt-1.index" not in objects


def test_half_written_files_and_dead_uploads_leftovers_are_not_mirrored(tmp_path):
    """An upload's hard links would keep a half-written file alive past its rename, so
    none is mirrored; a frozen copy a killed process left inside the run is removed."""
    from trainer.storage import staging

    for name in ("config.json.tmp", "checkpoints/checkpoint.tmp3f9a", "student/r.npz.tmp.npz"):
        assert not staging.mirrored(name)
    assert not staging.mirrored("checkpoints/ckpt-600_temp/part-00000-of-00001.index")
    assert staging.mirrored("checkpoints/ckpt-600.index")
    dead = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    left = tmp_path / f".upload-{dead.stdout.strip()}.tmp"
    _write(left / "checkpoints" / "ckpt-1.index", "kept alive")
    mine = staging.frozen_dir(str(tmp_path))
    assert not left.exists() and mine == str(tmp_path / f".upload-{os.getpid()}.tmp")
    _write(os.path.join(mine, "config.json"), "{}")
    assert staging.files(str(tmp_path)) == []  # a frozen copy is never one of the run's files


def test_a_file_the_bucket_holds_otherwise_than_sent_is_sent_again(gcs, tmp_path):
    _, client = gcs
    client.create_bucket("runs")
    local = tmp_path / "run"
    events = local / "train" / "events.out.tfevents.1"
    _write(events, "record 1;")
    _write(local / "checkpoints" / "ckpt-1.index", "one")
    mirror = storage.RunMirror(client, str(local), "gs://runs/r")
    mirror.upload()
    bucket = client.bucket("runs")
    bucket.blob("r/checkpoints/ckpt-1.index").upload_from_string("torn")
    bucket.blob("r/train/events.out.tfevents.1").upload_from_string("record 2;")  # no prefix
    mirror.upload()
    assert bucket.blob("r/checkpoints/ckpt-1.index").download_as_text() == "one"
    assert bucket.blob("r/train/events.out.tfevents.1").download_as_text() == "record 1;"
    bucket.blob("r/train/events.out.tfevents.1").upload_from_string("record")  # shorter
    mirror.upload()
    assert bucket.blob("r/train/events.out.tfevents.1").download_as_text() == "record 1;"


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
    server.close()


def test_a_final_upload_after_sigterm_gives_up_in_time(gcs, tmp_path):
    """Issue 25, point 14, the syncer alone: slow storage, a SIGTERM budget.

    The deadline logic, not wall seconds: the final upload stops at its deadline,
    names what stays local in one line and raises nothing (the exit code stays 143);
    a fresh mirror of the same staging copy then uploads exactly the rest.
    """
    server, client = gcs
    local = tmp_path / "run"
    mirror = _leased_mirror_with_checkpoints_to_upload(client, local)
    server.proxy.delay = 1.0
    messages: list[str] = []
    syncer = storage.Syncer(mirror, log=messages.append)
    syncer.stop_within(storage.sync.RESERVE + 1.5)  # 1.5 s left for uploads
    syncer.close()
    (line,) = messages
    assert line.startswith("Out of time after SIGTERM: not uploaded to gs://runs/r: ")
    assert "nor its marker" in line and "the next start" in line
    server.proxy.delay = 0.0
    # (Uploads under way at the deadline may still land here: the test process lives on.)
    assert storage.RunMirror(client, str(local), "gs://runs/r").upload() <= 12
    objects = _objects(client, "runs")
    assert all(f"r/checkpoints/ckpt-{i}.index" in objects for i in range(12))
    assert "r/.lease.json" not in _objects(client, "runs")  # released on the way out


def test_a_mirror_past_its_deadline_starts_no_request(gcs, tmp_path):
    """Review point 5: past the SIGTERM deadline, the CRC32C of every local file was
    still computed and requests still started (each given at least 0.1 s)."""
    server, client = gcs
    client.create_bucket("runs")
    _write(tmp_path / "run" / "config.json", "{}")
    mirror = storage.RunMirror(client, str(tmp_path / "run"), "gs://runs/r")
    mirror.take_lease({"host": "a", "pid": 1})
    mirror.upload()
    _write(tmp_path / "run" / "eval.json", "{}")
    requests: list[str] = []
    server.proxy.on_request = lambda method, path: requests.append(f"{method} {path}")
    for uploader in (mirror, storage.RunMirror(client, str(tmp_path / "run"), "gs://runs/r")):
        uploader.lease = mirror.lease  # the second: a restart's first upload (CRC32C)
        uploader.stop_by(time.monotonic())
        with pytest.raises(storage.StorageError, match="ran out of time uploading"):
            uploader.upload()
    server.proxy.on_request = None
    assert requests == []
    mirror.release_lease()


def test_sigterm_during_the_final_upload_still_reports_and_releases(gcs, tmp_path):
    """Review point 4: training done, the final upload slow, then SIGTERM. task.py's
    handler raised SystemExit inside close(): no "Out of time" line, lease kept. Now
    the handler (storage.bound_sigterm) only sets the deadline once close() has
    begun; the exit (143) follows close()."""
    server, client = gcs
    local = tmp_path / "run"
    mirror = _leased_mirror_with_checkpoints_to_upload(client, local)
    messages: list[str] = []
    syncer = storage.Syncer(mirror, log=messages.append)

    def stop(signum, frame):  # task.py's own handler
        raise SystemExit(128 + signum)

    def sigterm_once(method, path):  # at close()'s first request
        server.proxy.on_request = None
        os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        deliver = storage.bound_sigterm(syncer, storage.sync.RESERVE + 1.5)
        server.proxy.delay, server.proxy.on_request = 1.0, sigterm_once
        with pytest.raises(SystemExit) as stopped:
            syncer.close()
            deliver()
    finally:
        signal.signal(signal.SIGTERM, previous)
        server.proxy.delay, server.proxy.on_request = 0.0, None
    assert stopped.value.code == 143
    (line,) = messages
    assert line.startswith("Out of time after SIGTERM: not uploaded to gs://runs/r: ")
    give_up = time.monotonic() + 30  # the release's answer is not awaited: it lands soon
    while "r/.lease.json" in _objects(client, "runs") and time.monotonic() < give_up:
        time.sleep(0.1)
    assert "r/.lease.json" not in _objects(client, "runs")


@pytest.mark.slow
def test_train_and_render_through_gcs(gcs, tmp_path):
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

    # A resume on a new machine is test_kill_and_resume_on_a_new_machine's; a render
    # on one needs only the bucket too.
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
def test_a_camera_run_resumes_on_a_new_machine_and_films_from_gcs(gcs, tmp_path):
    """The cluster's way (issue 28): teacher, rounds and student all go to the bucket, and
    a pod on another node goes on from the last round without training the teacher again."""
    server, client = gcs
    client.create_bucket("kuka")
    env = {"STORAGE_EMULATOR_HOST": server.url}
    staging = tmp_path / "staging"
    camera = ["--env_id=KukaGraspCam-v0", "--image_size=32", "--dagger_episodes=2"]
    flags = ["--logdir=gs://kuka/runs", f"--staging_dir={staging}", "--run=cam", *TINY_FLAGS]
    first = run_task(*flags, *camera, "--dagger_iterations=1", "--student_epochs=1", env=env)
    assert first.returncode == 0, first.stderr[-3000:]
    objects = _objects(client, "kuka", "runs/cam/")
    for name in (
        "SYNCED.json",
        "vision.json",
        "dagger.json",
        "frames/round-000.npz",
        "teacher/checkpoints/checkpoint",
        "teacher/eval.json",
        "policy/saved_model.pb",
        "eval.json",
    ):
        assert f"runs/cam/{name}" in objects, name
    assert any(n.startswith("runs/cam/student/round-000/") for n in objects)

    shutil.rmtree(staging)  # a new machine: only the bucket has the run
    second = run_task(*flags, *camera, "--dagger_iterations=2", "--student_epochs=1", env=env)
    assert second.returncode == 0, second.stderr[-3000:]
    assert "Downloaded gs://kuka/runs/cam" in second.stderr
    assert "Resumed after round 1" in second.stderr
    assert "Training the teacher" not in second.stderr
    state = json.loads(client.bucket("kuka").blob("runs/cam/dagger.json").download_as_text())
    assert state["rounds"] == 2 and state["student"].startswith("student/round-001")
    assert "runs/cam/frames/round-001.npz" in _objects(client, "kuka", "runs/cam/")

    shutil.rmtree(staging)
    render = run_task(
        "render",
        "--logdir=gs://kuka/runs",
        f"--staging_dir={staging}",
        "--run=cam",
        "--episodes=1",
        "--width=64",
        "--height=48",
        "--frame_stride=50",
        env=env,
    )
    assert render.returncode == 0, render.stderr[-3000:]  # the student's 32x32 frames
    assert any(n.endswith(".mp4") for n in _objects(client, "kuka", "runs/cam/render/"))


@pytest.mark.slow
def test_distributed_run_keeps_every_events_file_in_the_bucket(gcs, tmp_path):
    """Two collectors and a learner on gs://, resumed from the bucket: nothing collected
    is lost, and the learner goes on from its checkpoint.

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


LEASE = "r/.lease.json"


class _Clock:
    """A lease taker's monotonic clock and sleep: a wait passes at once, and `during`
    (if given) runs in it, as what the world does while the taker waits."""

    def __init__(self, during=None):
        self.now, self.waited, self.during = 0.0, [], during

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.waited.append(seconds)
        if self.during is not None:
            self.during()
        self.now += seconds


def _taker(bucket, host: str, seconds: float, ticks: _Clock, log=None, **kwargs):
    return storage.Lease(
        bucket,
        LEASE,
        {"host": host, "pid": 2},
        seconds,
        log or (lambda msg: None),
        monotonic=ticks.monotonic,
        sleep=ticks.sleep,
        **kwargs,
    )


def test_lease_one_writer_per_run_across_machines(gcs):
    """Issue 25 review, point 12: the holder's renewals are driven by the taker's
    (injected) sleep, not raced against a thread on 2 loaded cores."""
    _, client = gcs
    bucket = client.create_bucket("runs")
    logs: list[str] = []
    first = storage.Lease(bucket, LEASE, {"host": "a", "pid": 1}, 2.0, logs.append)
    first.take()
    # A second machine while the first renews: it waits out the lease, sees it
    # renewed, and refuses in one line naming the holder.
    second = _taker(bucket, "b", 2.0, _Clock(during=first.renew), logs.append)
    with pytest.raises(storage.RunBusy, match="being trained by pid 1 on a"):
        second.take()
    assert logs[-1].startswith("The run's lease is held by pid 1 on a; waiting")
    # The first holder dies without releasing: the lease lapses and is taken over.
    second = _taker(bucket, "b", 2.0, _Clock())
    second.take()
    held = json.loads(bucket.blob(LEASE).download_as_text())
    assert (held["host"], held["pid"]) == ("b", 2)
    with pytest.raises(storage.LeaseLost, match="another machine took over"):
        first.renew()  # the dead holder's generation is gone: Cloud Storage answers 412
    second.release()
    assert bucket.get_blob(LEASE) is None
    assert [b.name for b in client.list_blobs("runs")] == []  # no clock probe left either


class _PastClock(datetime.datetime):
    """The emulator's clock `ago` seconds behind: what it writes now looks that old."""

    ago = 0.0

    @classmethod
    def now(cls, tz=None):
        return datetime.datetime.now(tz) - datetime.timedelta(seconds=cls.ago)


@pytest.mark.parametrize("skew", [600.0, -600.0])
@pytest.mark.parametrize("written_ago, waits", [(0.0, True), (600.0, False)])
def test_lease_trusts_no_machine_clock(gcs, monkeypatch, skew, written_ago, waits):
    """Issue 25, point 4: a machine 10 minutes ahead took over a live lease at once.

    A lease's age is the bucket's time (a probe object's `updated` minus the lease's):
    a lease the bucket wrote just now is waited out for its full `seconds`, one it
    wrote 600 s ago is taken over at once, whatever either machine's wall clock says
    (`clock`, skewed both ways, only fills the lease's unread `renewed`).
    """
    _, client = gcs
    bucket = client.create_bucket("runs")
    skewed = lambda: time.time() + skew  # noqa: E731
    with monkeypatch.context() as patch:
        patch.setattr(_PastClock, "ago", written_ago)
        patch.setattr(emulator_objects, "datetime", _PastClock)
        storage.Lease(bucket, LEASE, {"host": "a", "pid": 1}, 300.0, clock=skewed).take()
    clock = _Clock()
    _taker(bucket, "b", 300.0, clock, clock=lambda: time.time() - skew).take()
    if waits:  # 300 s less the seconds between the lease's write and the probe's, + 1
        assert len(clock.waited) == 1 and 290 < clock.waited[0] <= 301
    else:
        assert clock.waited == []
    assert json.loads(bucket.blob(LEASE).download_as_text())["host"] == "b"


def test_a_lease_asking_too_long_is_waited_out_for_seconds_at_most(gcs):
    """Review point 9: a lease with a huge `seconds` made the taker wait without limit."""
    _, client = gcs
    bucket = client.create_bucket("runs")
    bucket.blob(LEASE).upload_from_string(json.dumps({"host": "a", "pid": 1, "seconds": 1e12}))
    clock = _Clock()
    _taker(bucket, "b", 300.0, clock).take()
    assert len(clock.waited) == 1 and clock.waited[0] <= storage.lease.SECONDS + 1


def test_a_write_whose_answer_is_lost_keeps_the_lease(gcs):
    """Review point 2: a lease write done by the bucket but answered 503 is retried by
    the client and meets its own generation: 412. Taking then waited out its own
    lease, and every renewal failed. The lease's token tells its own write apart."""
    server, client = gcs
    bucket = client.create_bucket("runs")

    def no_wait(seconds):
        raise AssertionError(f"waited {seconds:.0f} s for its own lease")

    lease = storage.Lease(bucket, LEASE, {"host": "a", "pid": 1}, 300.0, sleep=no_wait)
    server.proxy.lose_answer.add(LEASE)
    lease.take()  # created, answer lost, retried: 412 on its own lease
    server.proxy.lose_answer.add(LEASE)
    lease.renew()  # the same for a renewal
    lease.renew()  # and the next one starts from the adopted generation
    assert server.proxy.lose_answer == set()  # both answers were lost
    assert sum(r.startswith("POST r/.lease.json") for r in server.proxy.refused) == 2
    assert json.loads(bucket.blob(LEASE).download_as_text())["host"] == "a"
    lease.release()
    assert bucket.get_blob(LEASE) is None


def test_a_kept_lease_is_renewed_while_nothing_uploads(gcs, tmp_path):
    """Review point 1: the lease was renewed only inside a full upload, so a long
    download, evaluation or retry pause let it lapse under a live trainer.

    A heartbeat renews it every `seconds`/4: a taker waiting it out (its sleep lasts
    until the lease's generation changes, or 30 s) finds it renewed. A heartbeat that
    finds the lease taken over marks it lost: the trainer stops at its next request.
    """
    _, client = gcs
    bucket = client.create_bucket("runs")
    holder = storage.RunMirror(client, str(tmp_path / "run"), "gs://runs/r")
    holder.take_lease({"host": "a", "pid": 1}, seconds=2.0)
    written = bucket.get_blob(LEASE).generation

    def until_renewed():
        give_up = time.monotonic() + 30  # a bound against a hang, not a measurement
        while bucket.get_blob(LEASE).generation == written and time.monotonic() < give_up:
            time.sleep(0.1)

    with pytest.raises(storage.RunBusy):
        _taker(bucket, "b", 2.0, _Clock(during=until_renewed)).take()
    bucket.blob(LEASE).upload_from_string("{}")  # taken over behind the holder's back
    syncer = storage.Syncer(holder, log=lambda msg: None)
    give_up = time.monotonic() + 30
    while holder.lease.lost is None and time.monotonic() < give_up:
        time.sleep(0.1)
    with pytest.raises(storage.LeaseLost):
        syncer.request()
    with pytest.raises(storage.LeaseLost):
        syncer.close()
    assert bucket.blob(LEASE).download_as_text() == "{}"  # not released: not its own


def test_a_lease_taken_over_stops_the_uploads_before_they_write(gcs, tmp_path):
    """Review point 1: a trainer whose lease lapsed and was taken over sent its data
    files, then failed to renew (412), called that "will retry" and trained on. Now
    the renewal comes first: LeaseLost, nothing written, the syncer stops the trainer."""
    _, client = gcs
    bucket = client.create_bucket("runs")
    local = tmp_path / "machine-a"
    _write(local / "config.json", "{}")
    first = storage.RunMirror(client, str(local), "gs://runs/r")
    # Taken without its heartbeat: a trainer stalled for longer than the lease.
    first.lease = storage.Lease(bucket, LEASE, {"host": "a", "pid": 1}, 1.0)
    first.lease.take()
    first.upload()
    _taker(bucket, "b", 1.0, _Clock()).take()
    _write(local / "checkpoints" / "ckpt-2.index", "two")
    messages: list[str] = []
    syncer = storage.Syncer(first, log=messages.append, final_deadline=5)
    syncer.request()
    with pytest.raises(storage.LeaseLost, match="another machine took over"):
        syncer.close()
    with pytest.raises(storage.LeaseLost):
        syncer.request()
    assert messages == []  # no "will retry"
    assert "r/checkpoints/ckpt-2.index" not in _objects(client, "runs")
    assert json.loads(bucket.blob(LEASE).download_as_text())["host"] == "b"


def test_a_download_cut_short_leaves_no_run(gcs, tmp_path):
    """Review point 3: files land in any order, and storage failing part-way left
    config.json without checkpoints; the next start took that for the run. Now a
    download lands in RUN.download.tmp and is moved into place only when complete."""
    server, client = gcs
    client.create_bucket("runs")
    _write(tmp_path / "a" / "config.json", "{}")
    _write(tmp_path / "a" / "checkpoints" / "ckpt-1.index", "one")
    _write(tmp_path / "a" / "checkpoints" / "checkpoint", 'model_checkpoint_path: "ckpt-1"')
    storage.RunMirror(client, str(tmp_path / "a"), "gs://runs/r").upload()
    run_dir, partial = tmp_path / "b" / "r", tmp_path / "b" / "r.download.tmp"
    copy = storage.RunMirror(client, str(run_dir), "gs://runs/r", retry_deadline=1)
    server.proxy.failing.add("r/checkpoints/ckpt-1.index")
    with pytest.raises(storage.StorageError, match="download of gs://runs/r failed"):
        copy.download()
    assert not run_dir.exists() and not partial.exists()
    _write(partial / "config.json", "a crash's leftover")
    server.proxy.failing.clear()
    assert copy.download()
    assert sorted(os.listdir(run_dir)) == ["checkpoints", "config.json"]
    assert (run_dir / "config.json").read_text() == "{}" and not partial.exists()
    assert sorted(os.listdir(run_dir / "checkpoints")) == ["checkpoint", "ckpt-1.index"]


def test_a_corrupt_lease_is_taken_over_in_one_line(gcs):
    """Issue 25, point 5: an unreadable .lease.json failed every start with a traceback."""
    _, client = gcs
    bucket = client.create_bucket("runs")
    bucket.blob("r/.lease.json").upload_from_string("{not json")
    broken = bucket.get_blob("r/.lease.json").generation
    logs: list[str] = []
    lease = storage.Lease(bucket, "r/.lease.json", {"host": "b", "pid": 2}, 300.0, logs.append)
    lease.take()  # at once: nobody can be renewing a lease nobody can read
    assert len(logs) == 1 and "unreadable" in logs[0] and "taking it over" in logs[0]
    held = bucket.get_blob("r/.lease.json")
    assert held.generation != broken and json.loads(held.download_as_text())["host"] == "b"


def test_a_new_machine_never_sends_the_lease_back(gcs, tmp_path):
    """Issue 25, point 1, in one process: a resume on a machine without a staging copy.

    The first machine uploads and dies holding the lease; the second takes it over,
    downloads the run and uploads it. It must neither download `.lease.json` nor send a
    copy back (a new generation under its own lease: every renewal then failed 412).
    """
    _, client = gcs
    client.create_bucket("runs")
    first_dir, second_dir = tmp_path / "machine-a", tmp_path / "machine-b"
    _write(first_dir / "config.json", "{}")
    _write(first_dir / "checkpoints" / "ckpt-1.index", "one")
    first = storage.RunMirror(client, str(first_dir), "gs://runs/r")
    first.lease = storage.Lease(client.bucket("runs"), LEASE, {"host": "a", "pid": 1}, 1.0)
    first.lease.take()  # without its heartbeat: machine a is preempted below
    first.upload()
    # An older trainer's stray local copy of a lease is no file of the run either.
    _write(first_dir / ".lease.json", '{"host": "stale"}')
    first.upload()  # then machine a is preempted: no release

    second = storage.RunMirror(client, str(second_dir), "gs://runs/r")
    second.take_lease({"host": "b", "pid": 2}, seconds=1.0, log=lambda msg: None)
    lease_generation = client.bucket("runs").get_blob("r/.lease.json").generation
    assert second.download()
    assert sorted(os.listdir(second_dir)) == ["checkpoints", "config.json"]
    _write(second_dir / "checkpoints" / "ckpt-2.index", "two")
    second.upload()  # renews the lease: a 412 here was the bug
    renewed = client.bucket("runs").get_blob("r/.lease.json")
    assert renewed.generation != lease_generation
    assert json.loads(renewed.download_as_text())["host"] == "b"
    second.release_lease()
    assert set(_objects(client, "runs")) == {
        "r/config.json",
        "r/checkpoints/ckpt-1.index",
        "r/checkpoints/ckpt-2.index",
        "r/SYNCED.json",
    }


def test_storage_down_or_failing_at_the_bucket_check(gcs):
    """Issue 25, point 6: a RetryError traceback of 66 or 133 lines; now one line, in time."""
    server, client = gcs
    client.create_bucket("runs")
    server.proxy.fail_status = 500
    with pytest.raises(storage.StorageUnavailable, match="did not answer usably for 2 s"):
        storage.check_bucket(client, "runs", deadline=2)
    server.proxy.fail_status = 0
    server.stop()  # nothing listening: the proxy answers 503
    with pytest.raises(storage.StorageUnavailable) as failure:
        storage.check_bucket(client, "runs", deadline=2)
    assert "\n" not in str(failure.value)
    server.start()


# A trainer whose lease lasts 5 s instead of 300 (lease.SECONDS), so that a resume after
# a SIGKILL waits seconds, not minutes, for the dead holder's lease to lapse.
SHORT_LEASE = (
    "import sys\n"
    "from trainer.storage import lease\n"
    "lease.SECONDS = 5.0\n"
    "from trainer import task\n"
    "task.run()\n"
)


class _Trainer:
    """The trainer CLI in its own process group, its stderr read as it comes."""

    def __init__(self, args, env):
        self.command = [sys.executable, "-c", SHORT_LEASE, *args]
        self.lines: list[str] = []
        self.proc = subprocess.Popen(
            self.command,
            cwd=ROOT,
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            start_new_session=True,
            env={**os.environ, **env},
        )
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip())

    def wait_for(self, ready, what: str, timeout: float = 600) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            assert self.proc.poll() is None, "\n".join(self.lines[-30:])
            assert time.monotonic() < deadline, f"no {what}:\n" + "\n".join(self.lines[-30:])
            time.sleep(0.2)

    def steps(self) -> int:
        done = [
            int(x.split()[1].split("/")[0].replace(",", ""))
            for x in self.lines
            if x.startswith("step ")
        ]
        return max(done, default=0)

    def finish(self, timeout: float = 900) -> int:
        code = self.proc.wait(timeout=timeout)
        time.sleep(0.2)  # the reader thread takes the last lines
        return code


def _show(title: str, trainer_or_result, code: int) -> None:
    """Prints a command, its exit code and its last lines (pytest -s shows them)."""
    command = getattr(trainer_or_result, "command", None) or trainer_or_result.args
    lines = getattr(trainer_or_result, "lines", None)
    if lines is None:
        lines = trainer_or_result.stderr.splitlines()
    shown = ["'<trainer.task with lease.SECONDS = 5>'" if c == SHORT_LEASE else c for c in command]
    print(f"\n$ {' '.join(shown)}   # {title}\nexit code {code}")
    for line in lines[-6:]:
        print(f"  | {line}")


def _listing(client, bucket: str, prefix: str) -> list[str]:
    return [
        f"{b.size:>9}  gen {b.generation}  {b.name}"
        for b in client.list_blobs(bucket, prefix=prefix)
    ]


@pytest.mark.slow
def test_kill_and_resume_on_a_new_machine(gcs, tmp_path):
    """Issue 25, point 1 end to end, through Cloud Storage's preconditions (gcs_proxy).

    A gs:// run is SIGKILLed mid-run (a preempted pod: no SIGTERM, the lease stays),
    then resumed with a fresh staging directory (a new pod). It must finish with exit
    0, its lease released, its marker current; before the fix the resume sent the
    downloaded lease back, every renewal failed 412, and it exited 1 after 300 s.
    """
    server, client = gcs
    client.create_bucket("kuka")
    env = {"STORAGE_EMULATOR_HOST": server.url}
    flags = ["--logdir=gs://kuka/runs", "--run=moved", *TINY_FLAGS]
    # Far more steps than it takes to be killed: under load the first verified upload
    # once came after a 1,800-step run had ended, and the kill found nothing to stop.
    first = _Trainer(
        [*flags, "--total_steps=1000000", f"--staging_dir={tmp_path / 'machine-a'}"], env
    )
    marker = client.bucket("kuka").blob("runs/moved/SYNCED.json")
    first.wait_for(lambda: first.steps() >= 600 and marker.exists(), "upload after 600 steps")
    os.killpg(first.proc.pid, signal.SIGKILL)
    _show("machine a, killed mid-run", first, first.finish())
    assert client.bucket("kuka").get_blob("runs/moved/.lease.json") is not None  # left behind
    # The checkpoint the bucket's pointer names, uploaded after the files it names.
    pointer = client.bucket("kuka").blob("runs/moved/checkpoints/checkpoint").download_as_text()
    uploaded = int(re.search(r'^model_checkpoint_path: "ckpt-(\d+)"', pointer, re.M).group(1))
    target = first.steps() + 600  # --total_steps is resumable; a multiple of 300 as each step

    started = time.time()
    second = _Trainer(
        [*flags, f"--total_steps={target}", f"--staging_dir={tmp_path / 'machine-b'}"], env
    )
    code = second.finish()
    _show("machine b, a fresh staging directory", second, code)
    listing = _listing(client, "kuka", "runs/moved/")
    print("\nbucket afterwards:\n" + "\n".join(listing))
    print(f"requests the preconditions refused: {server.proxy.refused}")
    err = "\n".join(second.lines)
    assert code == 0, err[-3000:]
    assert "Downloaded gs://kuka/runs/moved" in err and f"from env step {uploaded:,}" in err
    assert ".lease.json" not in err and "will retry" not in err, err[-3000:]
    objects = _objects(client, "kuka", "runs/moved/")
    assert "runs/moved/.lease.json" not in objects  # released
    assert json.loads(objects["runs/moved/eval.json"].download_as_text())["env_steps"] == target
    synced = json.loads(objects["runs/moved/SYNCED.json"].download_as_text())
    local = storage.RunMirror(client, str(tmp_path / "machine-b" / "moved"), "gs://kuka/runs/moved")
    assert synced["verified"] and synced["time"] > started
    assert synced["files"] == len(local.pending()) == len(objects) - 1  # every file, current
    assert f"runs/moved/checkpoints/ckpt-{target}.index" in objects


@pytest.mark.slow
def test_a_trainer_whose_lease_is_taken_stops_in_one_line(gcs, tmp_path):
    """Review point 1 through the CLI: another machine overwrites the lease of a
    training run (it took the lease over). The trainer's heartbeat finds it lost; the
    trainer stops at its next upload request: one line, exit 1, nothing more written."""
    server, client = gcs
    client.create_bucket("kuka")
    flags = ["--logdir=gs://kuka/runs", "--run=taken", *TINY_FLAGS, "--total_steps=1000000"]
    trainer = _Trainer([*flags, f"--staging_dir={tmp_path}"], {"STORAGE_EMULATOR_HOST": server.url})
    marker = client.bucket("kuka").blob("runs/taken/SYNCED.json")
    trainer.wait_for(lambda: trainer.steps() >= 600 and marker.exists(), "a first upload")
    theirs = json.dumps({"host": "other", "pid": 9, "seconds": 5.0})
    client.bucket("kuka").blob("runs/taken/.lease.json").upload_from_string(theirs)
    code = trainer.finish(timeout=300)
    _show("the lease taken by another machine", trainer, code)
    assert code == 1, "\n".join(trainer.lines[-30:])
    assert trainer.lines[-1].startswith("error: another machine took over the run's lease")
    assert not any("Traceback" in line for line in trainer.lines)
    lease = client.bucket("kuka").blob("runs/taken/.lease.json").download_as_text()
    assert lease == theirs  # neither renewed nor released: not its own


def _staged_run(staging, finished: bool) -> str:
    """A tiny run's files in `staging`/r as training leaves them (no TensorFlow needed)."""
    from trainer import config

    flags = dict(f[2:].split("=", 1) for f in TINY_FLAGS)
    cfg = config.Config(
        total_steps=int(flags["total_steps"]),
        num_envs=int(flags["num_envs"]),
        collect_steps=int(flags["collect_steps"]),
        checkpoint_interval=int(flags["checkpoint_interval"]),
        eval_interval=0,
        eval_episodes=int(flags["eval_episodes"]),
        actor_layers=(16,),
        value_layers=(16,),
        logdir="gs://kuka/runs",
        staging_dir=str(staging),
        run="r",
    )
    run_dir = staging / "r"
    os.makedirs(run_dir / "checkpoints")
    RunDir(str(run_dir)).save_config(cfg)
    _write(run_dir / "checkpoints" / "ckpt-600.index", "index")
    if finished:
        _write(run_dir / "eval.json", json.dumps({"env_steps": 600}))
    return str(run_dir)


@pytest.mark.parametrize(
    "flag, code, words",
    [
        ("--seed=7", 2, "exists with another config"),
        ("--total_steps=600", 0, "already finished at step 600"),
    ],
)
def test_a_refused_start_leaves_no_lease(gcs, tmp_path, flag, code, words):
    """Issue 25, point 2: a refused gs:// start left .lease.json for 300 s."""
    server, client = gcs
    client.create_bucket("kuka")
    staging = tmp_path / "stage"
    run_dir = _staged_run(staging, finished=True)
    storage.RunMirror(client, run_dir, "gs://kuka/runs/r").upload()
    result = run_task(
        "--logdir=gs://kuka/runs",
        f"--staging_dir={staging}",
        "--run=r",
        *TINY_FLAGS,
        flag,
        env={"STORAGE_EMULATOR_HOST": server.url},
        timeout=300,
    )
    _show("a refused start", result, result.returncode)
    assert result.returncode == code and words in result.stderr, result.stderr[-2000:]
    assert "runs/r/.lease.json" not in _objects(client, "kuka")


def test_a_finished_run_uploads_what_the_bucket_lacks(gcs, tmp_path):
    """Issue 25, point 3: after "storage never came back" the next start said "already
    finished", exited 0 and uploaded nothing; the bucket kept lacking eval.json."""
    server, client = gcs
    client.create_bucket("kuka")
    staging = tmp_path / "stage"
    run_dir = _staged_run(staging, finished=False)
    storage.RunMirror(client, run_dir, "gs://kuka/runs/r").upload()  # the last upload that worked
    _write(staging / "r" / "eval.json", json.dumps({"env_steps": 600}))  # then storage went
    _write(staging / "r" / "checkpoints" / "checkpoint", 'model_checkpoint_path: "ckpt-600"')
    result = run_task(
        "--logdir=gs://kuka/runs",
        f"--staging_dir={staging}",
        "--run=r",
        *TINY_FLAGS,
        env={"STORAGE_EMULATOR_HOST": server.url},
        timeout=300,
    )
    _show("the next start", result, result.returncode)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert lines[-2] == "Uploaded 2 file(s) gs://kuka/runs/r lacked"
    assert "already finished at step 600" in lines[-1]
    objects = _objects(client, "kuka", "runs/r/")
    assert json.loads(objects["runs/r/eval.json"].download_as_text())["env_steps"] == 600
    assert "runs/r/checkpoints/checkpoint" in objects and "runs/r/.lease.json" not in objects


@pytest.mark.slow
def test_storage_failing_at_start_is_one_line_exit_1(gcs, tmp_path):
    """Issue 25, point 6, through the CLI: 500s for the whole bucket check (30 s)."""
    server, client = gcs
    client.create_bucket("kuka")
    server.proxy.fail_status = 500
    result = run_task(
        "--logdir=gs://kuka/runs",
        f"--staging_dir={tmp_path}",
        "--run=r",
        *TINY_FLAGS,
        env={"STORAGE_EMULATOR_HOST": server.url},
        timeout=300,
    )
    _show("storage answering 500", result, result.returncode)
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 1 and len(lines) == 1, result.stderr[-3000:]
    assert lines[0].startswith("error: storage did not answer usably for 30 s")


@pytest.mark.slow
def test_sigterm_under_slow_storage_keeps_its_budget(gcs, tmp_path):
    """Issue 25, point 14: at 3 s a request, SIGTERM to exit took 44 s.

    With every request slowed to 2 s and --sigterm_budget=6, the final upload cannot
    finish: the trainer gives up at its own deadline, names what stays local in one
    line, exits 143; the next start with that staging directory uploads the rest.
    """
    server, client = gcs
    client.create_bucket("kuka")
    env = {"STORAGE_EMULATOR_HOST": server.url}
    staging = tmp_path / "stage"
    flags = ["--logdir=gs://kuka/runs", f"--staging_dir={staging}", "--run=slow", *TINY_FLAGS]
    trainer = _Trainer([*flags, "--total_steps=1000000", "--sigterm_budget=6"], env)
    marker = client.bucket("kuka").blob("runs/slow/SYNCED.json")
    trainer.wait_for(lambda: trainer.steps() >= 600 and marker.exists(), "a first upload")
    server.proxy.delay = 2.0
    sent = time.monotonic()
    trainer.proc.send_signal(signal.SIGTERM)
    code = trainer.finish(timeout=120)
    print(f"\nSIGTERM to exit: {time.monotonic() - sent:.1f} s (budget 6 s)")
    _show("SIGTERM, storage at 2 s a request", trainer, code)
    assert code == 143, "\n".join(trainer.lines[-30:])
    (gave_up,) = [x for x in trainer.lines if x.startswith("Out of time after SIGTERM")]
    assert "stay in" in gave_up and "the next start" in gave_up
    assert "nor its marker" in gave_up  # the bucket's marker still vouches for the old state
    saved = max(
        int(n[5:-6])
        for n in os.listdir(staging / "slow" / "checkpoints")
        if n.startswith("ckpt-") and n.endswith(".index")
    )

    server.proxy.delay = 0.0
    again = _Trainer([*flags, f"--total_steps={saved}"], env)
    code = again.finish()
    _show("the next start", again, code)
    assert code == 0, "\n".join(again.lines[-30:])
    objects = _objects(client, "kuka", "runs/slow/")
    assert f"runs/slow/checkpoints/ckpt-{saved}.index" in objects
    assert "runs/slow/eval.json" in objects and "runs/slow/.lease.json" not in objects
    # Everything the staging copy holds is in the bucket: a fresh mirror finds nothing to send.
    assert storage.RunMirror(client, str(staging / "slow"), "gs://kuka/runs/slow").upload() == 0
