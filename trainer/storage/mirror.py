"""A run mirrored between a local staging directory and gs://, uploaded in the background.

Each upload sends data files first, TensorFlow's `checkpoints/checkpoint` pointer
after them and the `SYNCED.json` marker last, so a pointer on GCS never names a
checkpoint whose files are missing, and a run without the marker was never
completely uploaded.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

from google.api_core import exceptions as api_exceptions
from google.cloud.storage import transfer_manager

from trainer.storage.bucket import StorageError, parse_url, retry_policy
from trainer.storage.lease import LEASE, Lease

MARKER = "SYNCED.json"
# Uploaded after everything else but the marker: TensorFlow follows these to data files.
POINTERS = ("checkpoints/checkpoint",)


class RunMirror:
    """One run directory, kept in step between `local_dir` and `url`."""

    def __init__(self, client, local_dir: str, url: str, retry_deadline: float = 60.0):
        self._client, self.local_dir, self.url = client, local_dir, url
        self._bucket_name, self._prefix = parse_url(url)
        self._bucket = client.bucket(self._bucket_name)
        self._retry = retry_policy(retry_deadline)
        self._sent: dict[str, tuple[int, int]] = {}
        self.lease: Lease | None = None  # renewed at every full upload once taken

    def take_lease(self, holder: dict, seconds: float = 300.0, log=None) -> None:
        """One writer per run: RunBusy if a live trainer elsewhere holds it (see Lease)."""
        self.lease = Lease(self._bucket, self._name(LEASE), holder, seconds, log)
        self.lease.take()

    def _name(self, relative: str) -> str:
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def remote_files(self) -> list[str]:
        start = len(self._prefix) + 1 if self._prefix else 0
        blobs = self._client.list_blobs(self._bucket_name, prefix=self._name(""), retry=self._retry)
        return [blob.name[start:] for blob in blobs]

    def is_complete(self) -> bool:
        """Whether an upload of this run ever finished (its marker is there)."""
        return self._bucket.blob(self._name(MARKER)).exists(retry=self._retry)

    def download(self, only: str = "") -> bool:
        """Fetches the run (or its `only` subdirectory) if it was ever completely uploaded."""
        if not self.is_complete():
            return False
        names = [n for n in self.remote_files() if n != MARKER and n.startswith(only)]
        results = transfer_manager.download_many_to_path(
            self._bucket,
            names,
            blob_name_prefix=self._name(""),
            destination_directory=self.local_dir,
            worker_type=transfer_manager.THREAD,
            download_kwargs={"retry": self._retry},
        )
        _raise_first(results, "download", self.url)
        for name in names:
            self._remember(name)
        return True

    def _local_files(self, only: str) -> list[str]:
        found = []
        for root, dirs, files in os.walk(os.path.join(self.local_dir, only)):
            # Staging directories are half-written by definition.
            dirs[:] = [d for d in dirs if not d.endswith((".tmp", ".old"))]
            for name in files:
                path = os.path.relpath(os.path.join(root, name), self.local_dir)
                found.append(path.replace(os.sep, "/"))
        return sorted(found)

    def _stat(self, relative: str) -> tuple[int, int]:
        stat = os.stat(os.path.join(self.local_dir, relative))
        return stat.st_size, stat.st_mtime_ns

    def _remember(self, relative: str) -> None:
        self._sent[relative] = self._stat(relative)

    def _send(self, names: list[str]) -> None:
        """Uploads `names`: data first, then the pointers that name them."""
        data = [f for f in names if f not in POINTERS]
        pointers = [f for f in names if f in POINTERS]
        for group in (data, pointers):
            if not group:
                continue
            stats = {f: self._stat(f) for f in group}
            results = transfer_manager.upload_many_from_filenames(
                self._bucket,
                group,
                source_directory=self.local_dir,
                blob_name_prefix=self._name(""),
                worker_type=transfer_manager.THREAD,
                upload_kwargs={"retry": self._retry},
            )
            _raise_first(results, "upload", self.url)
            self._sent.update(stats)

    def _unverified(self, files: list[str]) -> list[str]:
        """Local files the bucket lacks, or holds with another size or CRC32C."""
        start = len(self._prefix) + 1 if self._prefix else 0
        remote = {
            blob.name[start:]: blob
            for blob in self._client.list_blobs(
                self._bucket_name, prefix=self._name(""), retry=self._retry
            )
        }
        wrong = []
        for name in files:
            blob = remote.get(name)
            path = os.path.join(self.local_dir, name)
            if blob is None or blob.size != os.path.getsize(path) or blob.crc32c != _crc32c(path):
                wrong.append(name)
        return wrong

    def upload(self, only: str = "") -> int:
        """Uploads new and changed files: data, then pointers, then the marker; returns a count.

        A full upload (no `only`) checks the bucket against the local files (names,
        sizes, CRC32C) before it writes the marker, and sends again whatever is
        missing or different, so the marker never vouches for a file that is not there.
        """
        files = self._local_files(only)
        changed = [f for f in files if self._sent.get(f) != self._stat(f)]
        self._send(changed)
        if not only:
            resend = self._unverified(files)
            if resend:
                print(
                    f"Re-uploading {len(resend)} file(s) missing or different in {self.url}: "
                    + ", ".join(resend[:3]),
                    file=sys.stderr,
                    flush=True,
                )
                self._send(resend)
                still = self._unverified(resend)
                if still:
                    raise StorageError(
                        f"{self.url} still lacks {', '.join(still[:3])} after upload"
                    )
            changed += resend
        if not only and self.lease is not None:
            self.lease.renew()
        if changed or not only:
            marker = {
                "time": time.time(),
                "files": len(self._local_files("")),
                "verified": not only,
            }
            self._bucket.blob(self._name(MARKER)).upload_from_string(
                json.dumps(marker), content_type="application/json", retry=self._retry
            )
        if not only:
            self._delete_stale(set(files))
        return len(changed)

    def _delete_stale(self, local: set[str]) -> None:
        """Removes what the run deleted locally (old checkpoints), after the marker.

        Only files this mirror uploaded or downloaded: anything else under the run's
        prefix was written by someone else and is left alone.
        """
        for name in self.remote_files():
            if name != MARKER and name not in local and name in self._sent:
                self._bucket.blob(self._name(name)).delete(retry=self._retry)
                self._sent.pop(name, None)


def _crc32c(path: str) -> str:
    """A file's CRC32C as Cloud Storage reports it (base64 of the big-endian digest)."""
    import base64

    import google_crc32c

    checksum = google_crc32c.Checksum()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            checksum.update(chunk)
    return base64.b64encode(checksum.digest()).decode()


def latest_run(client, url: str) -> str | None:
    """The run under gs:// `url` whose last complete upload is the newest."""
    bucket, prefix = parse_url(url)
    start = f"{prefix}/" if prefix else ""
    markers = [
        blob
        for blob in client.list_blobs(bucket, prefix=start, retry=retry_policy(60))
        if blob.name.endswith(f"/{MARKER}") and blob.name[len(start) :].count("/") == 1
    ]
    if not markers:
        return None
    newest = max(markers, key=lambda blob: blob.updated)
    return newest.name[len(start) :].split("/")[0]


def _raise_first(results, verb: str, url: str) -> None:
    for result in results:
        if isinstance(result, Exception):
            raise StorageError(f"{verb} of {url} failed: {type(result).__name__}: {result}")


class Syncer:
    """Uploads a run in a background thread whenever asked; training never waits for it.

    A failed upload is retried with growing pauses; `close()` makes a last upload
    and raises StorageError only if storage never came back.
    """

    def __init__(self, mirror: RunMirror, log=None, final_deadline: float = 300.0):
        self._mirror, self._final_deadline = mirror, final_deadline
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._wanted = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self.failures = 0
        self._thread = threading.Thread(target=self._loop, name="gcs-sync", daemon=True)
        self._thread.start()

    def request(self) -> None:
        self._wanted.set()

    def _upload_once(self) -> bool:
        with self._lock:
            try:
                self._mirror.upload()
                return True
            except (StorageError, api_exceptions.GoogleAPIError, OSError) as e:
                self.failures += 1
                self._log(f"warning: upload to {self._mirror.url} failed, will retry: {e}")
                return False

    def _loop(self) -> None:
        pause = 5.0
        while not self._stopping:
            self._wanted.wait()
            if self._stopping:
                return
            self._wanted.clear()
            if self._upload_once():
                pause = 5.0
            else:
                time.sleep(pause)
                pause = min(pause * 2, 120.0)
                self._wanted.set()

    def close(self) -> None:
        """Stops the thread, then uploads until done or `final_deadline` passes."""
        self._stopping = True
        self._wanted.set()
        self._thread.join()
        deadline, pause = time.time() + self._final_deadline, 2.0
        while not self._upload_once():
            if time.time() + pause > deadline:
                raise StorageError(
                    f"could not upload the run to {self._mirror.url} for "
                    f"{self._final_deadline:.0f} s; the local copy in {self._mirror.local_dir} "
                    "is complete, and the next start uploads it"
                )
            time.sleep(pause)
            pause = min(pause * 2, 30.0)
        if self._mirror.lease is not None:  # everything is up: the next trainer may start
            self._mirror.lease.release()
