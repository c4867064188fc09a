"""A run mirrored between a local staging directory and gs://.

Each upload sends data files first, TensorFlow's `checkpoints/checkpoint` pointer
after them and the `SYNCED.json` marker last, so a pointer on GCS never names a
checkpoint whose files are missing, and a run without the marker was never
completely uploaded. The lease object (lease.py) is the bucket's alone: the mirror
never downloads, uploads or deletes it.
"""

from __future__ import annotations

import base64
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


def mirrored(name: str) -> bool:
    """Whether a run's file is kept in step: not the marker (each upload writes it), not
    the lease nor its clock probes (their writers' alone: a downloaded lease sent back
    would change its generation under its holder)."""
    return name != MARKER and not name.startswith(LEASE)


_WORKERS = 8  # files uploaded at once


class OutOfTime(StorageError):
    """The mirror's deadline passed before these files were uploaded."""

    def __init__(self, url: str, files: list[str]):
        self.files = files
        super().__init__(f"ran out of time uploading {len(files)} file(s) to {url}")


class RunMirror:
    """One run directory, kept in step between `local_dir` and `url`."""

    def __init__(self, client, local_dir: str, url: str, retry_deadline: float = 60.0):
        self._client, self.local_dir, self.url = client, local_dir, url
        self._bucket_name, self._prefix = parse_url(url)
        self._bucket = client.bucket(self._bucket_name)
        self._retry_deadline = retry_deadline
        self._sent: dict[str, tuple[int, int]] = {}
        self._deadline: float | None = None  # time.monotonic() after which nothing starts
        self.lease: Lease | None = None  # renewed at every full upload once taken

    def take_lease(self, holder: dict, seconds: float | None = None, log=None) -> None:
        """One writer per run: RunBusy if a live trainer elsewhere holds it (see Lease)."""
        self.lease = Lease(self._bucket, self._name(LEASE), holder, seconds, log)
        self.lease.take()

    def release_lease(self) -> None:
        if self.lease is not None:
            self.lease.release()

    def stop_by(self, deadline: float) -> None:
        """From now on every request ends by `deadline` (time.monotonic()): OutOfTime."""
        self._deadline = deadline

    def _left(self) -> float:
        return float("inf") if self._deadline is None else self._deadline - time.monotonic()

    def _timeout(self) -> float:
        """Seconds one request (its retries included) may take now."""
        return max(0.1, min(self._retry_deadline, self._left()))

    def _retry(self):
        return retry_policy(self._timeout())

    def _name(self, relative: str) -> str:
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def _listing(self) -> dict:
        """The run's objects by relative name (the lease's included)."""
        start = len(self._prefix) + 1 if self._prefix else 0
        blobs = self._client.list_blobs(
            self._bucket_name, prefix=self._name(""), retry=self._retry(), timeout=self._timeout()
        )
        return {blob.name[start:]: blob for blob in blobs}

    def remote_files(self) -> list[str]:
        return list(self._listing())

    def is_complete(self) -> bool:
        """Whether an upload of this run ever finished (its marker is there)."""
        return self._bucket.blob(self._name(MARKER)).exists(retry=self._retry())

    def download(self, only: str = "") -> bool:
        """Fetches the run (or its `only` subdirectory) if it was ever completely uploaded."""
        if not self.is_complete():
            return False
        names = [n for n in self.remote_files() if mirrored(n) and n.startswith(only)]
        results = transfer_manager.download_many_to_path(
            self._bucket,
            names,
            blob_name_prefix=self._name(""),
            destination_directory=self.local_dir,
            worker_type=transfer_manager.THREAD,
            download_kwargs={"retry": self._retry()},
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
        return sorted(f for f in found if mirrored(f))

    def _stat(self, relative: str) -> tuple[int, int] | None:
        """(size, mtime) of a local file; None once the run deleted it (an old checkpoint)."""
        try:
            stat = os.stat(os.path.join(self.local_dir, relative))
        except FileNotFoundError:
            return None
        return stat.st_size, stat.st_mtime_ns

    def _remember(self, relative: str) -> None:
        stat = self._stat(relative)
        if stat is not None:
            self._sent[relative] = stat

    def _changed(self, files: list[str]) -> list[str]:
        """Of `files`, those still there and not uploaded as they are now."""
        return [f for f in files if self._stat(f) not in (None, self._sent.get(f))]

    def pending(self) -> list[str]:
        """Local files not uploaded as they are now (all of them before a first upload)."""
        return self._changed(self._local_files(""))

    def _send(self, names: list[str]) -> None:
        """Uploads `names`: data first, then the pointers that name them."""
        data = [f for f in names if f not in POINTERS]
        pointers = [f for f in names if f in POINTERS]
        for group in (data, pointers):
            stats = {f: self._stat(f) for f in group}
            stats = {f: stat for f, stat in stats.items() if stat is not None}
            if stats:
                vanished = self._put(list(stats))
                self._sent.update((f, stat) for f, stat in stats.items() if f not in vanished)

    def _put(self, names: list[str]) -> set[str]:
        """Uploads `names` in parallel; returns those the run deleted meanwhile.

        OutOfTime, naming the rest, once the deadline passes.

        Daemon threads rather than transfer_manager's pool: a pool is joined at exit,
        so an upload under way would hold up the exit past the deadline.
        """
        todo, failed, done, lock = list(reversed(names)), [], set(), threading.Lock()
        vanished: set[str] = set()

        def work():
            while self._left() > 0:
                with lock:
                    if not todo:
                        return
                    name = todo.pop()
                blob = self._bucket.blob(self._name(name))
                try:
                    blob.upload_from_filename(
                        os.path.join(self.local_dir, name),
                        retry=self._retry(),
                        timeout=self._timeout(),
                    )
                    done.add(name)
                except FileNotFoundError:  # deleted by the run since it was listed
                    vanished.add(name)
                    done.add(name)
                except (api_exceptions.GoogleAPIError, OSError, ValueError) as e:
                    failed.append(e)

        threads = [threading.Thread(target=work, daemon=True) for _ in names[:_WORKERS]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=None if self._deadline is None else max(0.0, self._left()))
        if failed:
            raise StorageError(
                f"upload of {self.url} failed: {type(failed[0]).__name__}: {failed[0]}"
            )
        if len(done) < len(names):
            raise OutOfTime(self.url, [n for n in names if n not in done])
        return vanished

    def _unverified(self, files: list[str]) -> list[str]:
        """Local files the bucket lacks, or holds with another size or CRC32C."""
        remote = self._listing()
        wrong = []
        for name in files:
            blob, stat = remote.get(name), self._stat(name)
            if stat is None:
                continue  # deleted by the run: nothing to vouch for
            path = os.path.join(self.local_dir, name)
            try:
                if blob is None or blob.size != stat[0] or blob.crc32c != _crc32c(path):
                    wrong.append(name)
            except FileNotFoundError:
                continue
        return wrong

    def _seed(self, files: list[str]) -> None:
        """Before a mirror's first upload: what the bucket already holds counts as sent.

        A resumed staging copy (a restart on the same machine, or after an upload that
        gave up) then sends only what the bucket lacks, not the whole run again.
        """
        wrong = set(self._unverified(files))
        for name in files:
            if name not in wrong:
                self._remember(name)

    def upload(self, only: str = "") -> int:
        """Uploads new and changed files: data, then pointers, then the marker; returns a count.

        A full upload (no `only`) checks the bucket against the local files (names,
        sizes, CRC32C) before it writes the marker, and sends again whatever is
        missing or different, so the marker never vouches for a file that is not there.
        """
        files = self._local_files(only)
        if not only and not self._sent:
            self._seed(files)
        changed = self._changed(files)
        self._send(changed)
        if not only:
            changed += self._verify(files)
        if not only and self.lease is not None:
            self.lease.renew(timeout=self._timeout())
        if changed or not only:
            marker = {
                "time": time.time(),
                "files": len(self._local_files("")),
                "verified": not only,
            }
            self._bucket.blob(self._name(MARKER)).upload_from_string(
                json.dumps(marker),
                content_type="application/json",
                retry=self._retry(),
                timeout=self._timeout(),
            )
        if not only:
            self._delete_stale(set(files))
        return len(changed)

    def _verify(self, files: list[str]) -> list[str]:
        """Sends again what the bucket lacks or holds otherwise; returns those files."""
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
                raise StorageError(f"{self.url} still lacks {', '.join(still[:3])} after upload")
        return resend

    def _delete_stale(self, local: set[str]) -> None:
        """Removes what the run deleted locally (old checkpoints), after the marker.

        Only files this mirror uploaded or downloaded: anything else under the run's
        prefix was written by someone else and is left alone.
        """
        for name in self.remote_files():
            if mirrored(name) and name not in local and name in self._sent:
                self._bucket.blob(self._name(name)).delete(
                    retry=self._retry(), timeout=self._timeout()
                )
                self._sent.pop(name, None)


def _crc32c(path: str) -> str:
    """A file's CRC32C as Cloud Storage reports it (base64 of the big-endian digest)."""
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
