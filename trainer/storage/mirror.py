"""A run mirrored between a local staging directory and gs://.

Each upload sends data files first, the pointers that name them after them
(TensorFlow's `checkpoints/checkpoint`, a camera run's `dagger.json`: staging.POINTERS)
and the `SYNCED.json` marker last, so a pointer on GCS never names a file that is
missing, and a run without the marker was never completely uploaded. An upload sends
the data files as they were listed (hard links: the run goes on meanwhile), checks the
bucket against them before the marker, and sends again anything missing or different;
a file the run changed since goes up with the next upload. The lease object
(lease.py) is the bucket's alone: the mirror never downloads, uploads or deletes it,
and renews it before every upload.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import time

from google.cloud.storage import transfer_manager

from trainer.storage import bucket, staging, transfer
from trainer.storage.bucket import MARKER, OutOfTime, StorageError, crc32c, describe
from trainer.storage.lease import LEASE, RELEASE_SECONDS, Lease


class RunMirror:
    """One run directory, kept in step between `local_dir` and `url`."""

    def __init__(self, client, local_dir: str, url: str, retry_deadline: float = 60.0):
        self._client, self.local_dir, self.url = client, local_dir, url
        self._bucket_name, self._prefix = bucket.parse_url(url)
        self._bucket = client.bucket(self._bucket_name)
        self._retry_deadline = retry_deadline
        self._sent: dict[str, tuple[int, int]] = {}
        # While an upload runs, its data files hard-linked as listed (staging.freeze).
        self._frozen: str | None = None
        self._unlinked_said = False
        # The pointers as this upload read them, before listing the files (_snapshot).
        self._pointers: dict[str, tuple[bytes, tuple[int, int]]] = {}
        self._deadline: float | None = None  # time.monotonic() after which nothing starts
        self.lease: Lease | None = None  # renewed before every upload once taken

    def take_lease(self, holder: dict, seconds: float | None = None, log=None) -> None:
        """One writer per run, renewed from now on: RunBusy if a live trainer elsewhere
        holds it (see Lease)."""
        self.lease = Lease(self._bucket, self._name(LEASE), holder, seconds, log)
        self.lease.take()
        self.lease.keep()

    def release_lease(self) -> None:
        """Frees the run for the next start; the only way a trainer gives its lease up."""
        if self.lease is not None:
            self.lease.release(timeout=60.0 if self._deadline is None else RELEASE_SECONDS)

    def stop_by(self, deadline: float) -> None:
        """From now on every request ends by `deadline` (time.monotonic()): OutOfTime."""
        self._deadline = deadline

    def _left(self) -> float:
        return float("inf") if self._deadline is None else self._deadline - time.monotonic()

    def _in_time(self) -> None:
        """OutOfTime, naming what is not uploaded, once the deadline has passed."""
        if self._left() <= 0:
            raise OutOfTime(self.url, self.pending())

    def _timeout(self) -> float:
        """Seconds one request (its retries included) may take now."""
        return max(0.1, min(self._retry_deadline, self._left()))

    def _retry(self):
        return bucket.retry_policy(self._timeout())

    def _name(self, relative: str) -> str:
        return f"{self._prefix}/{relative}" if self._prefix else relative

    def _listing(self) -> dict:
        """The run's objects by relative name (the lease's included)."""
        start = len(self._prefix) + 1 if self._prefix else 0
        blobs = self._client.list_blobs(
            self._bucket_name, prefix=self._name(""), retry=self._retry(), timeout=self._timeout()
        )
        return {blob.name[start:]: blob for blob in blobs}

    def download(self, only: str = "") -> bool:
        """Fetches the run (or its `only` subdirectory) if it was ever completely uploaded.

        Into LOCAL_DIR.download.tmp first, moved into place only once every file has
        arrived: files land in any order, and a half download holding config.json
        would pass for the run at the next start. A leftover of a crash is removed.
        """
        if not self._bucket.blob(self._name(MARKER)).exists(retry=self._retry()):
            return False  # no upload of the run ever finished
        names = [n for n in self._listing() if staging.mirrored(n) and n.startswith(only)]
        if not names:  # nothing of `only` was uploaded (a state run has no vision.json)
            return True
        partial = self.local_dir.rstrip(os.sep) + ".download.tmp"
        shutil.rmtree(partial, ignore_errors=True)
        try:
            results = transfer_manager.download_many_to_path(
                self._bucket,
                names,
                blob_name_prefix=self._name(""),
                destination_directory=partial,
                worker_type=transfer_manager.THREAD,
                download_kwargs={"retry": self._retry()},
            )
            failed = [r for r in results if isinstance(r, Exception)]
            if failed:
                raise StorageError(f"download of {self.url} failed: {describe(failed[0])}")
            staging.move_into(partial, self.local_dir)
        finally:
            shutil.rmtree(partial, ignore_errors=True)
        for name in names:
            self._remember(name)
        return True

    def _local_files(self, only: str) -> list[str]:
        return [f for f in staging.files(self.local_dir, only) if staging.mirrored(f)]

    def _stat(self, relative: str) -> tuple[int, int] | None:
        """(size, mtime) of `relative` as an upload sees it: a file the run deleted since
        it was listed is still sent (an old checkpoint that a pointer read before the
        listing names), and checked."""
        return staging.stat(self._source(relative))

    def _source(self, relative: str) -> str:
        """Where an upload reads `relative` from: its frozen link, else the run's file."""
        if self._frozen is not None:
            frozen = os.path.join(self._frozen, relative)
            if os.path.exists(frozen):
                return frozen
        return os.path.join(self.local_dir, relative)

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

    def _snapshot(self, only: str) -> None:
        """Reads the pointers before the files are listed; they go up as read, so none
        names a file this upload left out (TensorFlow rewrites its pointer meanwhile)."""
        self._pointers = staging.pointers(self.local_dir, self._local_files(only))

    def _send(self, names: list[str]) -> None:
        """Uploads `names`: data first, then the pointers that name them, as snapshot."""
        data = [f for f in names if not staging.is_pointer(f)]
        stats = {f: self._stat(f) for f in data}
        stats = {f: stat for f, stat in stats.items() if stat is not None}
        if stats:
            vanished = self._put(list(stats))
            self._sent.update((f, stat) for f, stat in stats.items() if f not in vanished)
        for name in names:
            if name in self._pointers:  # one written after the snapshot waits for the next
                self._in_time()
                content, stat = self._pointers[name]
                self._bucket.blob(self._name(name)).upload_from_string(
                    content, retry=self._retry(), timeout=self._timeout()
                )
                self._sent[name] = stat

    def _put(self, names: list[str]) -> set[str]:
        """Uploads `names` as frozen (transfer.put); returns those the run deleted meanwhile."""
        return transfer.put(
            {name: (self._bucket.blob(self._name(name)), self._source(name)) for name in names},
            self.url,
            self._left,
            lambda: {"retry": self._retry(), "timeout": self._timeout()},
        )

    def _unverified(self, files: list[str]) -> list[str]:
        """Local files the bucket lacks, or holds otherwise than this mirror sent them."""
        self._in_time()
        remote = self._listing()
        wrong = []
        for name in files:
            self._in_time()  # a CRC32C of every file takes a while
            if self._stat(name) is None or (
                staging.is_pointer(name) and name not in self._pointers
            ):
                continue  # deleted by the run, or a pointer new since the snapshot: the next
            try:
                if not self._holds(remote.get(name), name):
                    wrong.append(name)
            except FileNotFoundError:
                continue
        return wrong

    def _holds(self, blob, name: str) -> bool:
        """Whether `blob` is `name` as sent: a pointer as read; a data file as frozen, or
        as it grew since (an events file: the bucket holds at least its bytes when sent).
        Against the files as they were by then, a file changing faster than an upload and
        its check never passed, and the run never got its marker."""
        if blob is None:
            return False
        if name in self._pointers:
            content = self._pointers[name][0]
            return blob.size == len(content) and blob.crc32c == crc32c(data=content)
        source = self._source(name)
        size = os.path.getsize(source)
        listed = self._sent[name][0] if name in self._sent else size
        return listed <= blob.size <= size and blob.crc32c == crc32c(source, size=blob.size)

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

        The data files are hard-linked as listed (staging.freeze) and sent from there.
        A full upload (no `only`) checks the bucket (names, sizes, CRC32C) against what
        it sent before it writes the marker, and sends again whatever is missing or
        different, so the marker never vouches for a file that is not there.
        """
        self._snapshot(only)
        files = self._local_files(only)
        self._freeze([f for f in files if not staging.is_pointer(f)])
        try:
            return self._upload(only, files)
        finally:
            frozen, self._frozen = self._frozen, None
            shutil.rmtree(frozen, ignore_errors=True)

    def _freeze(self, names: list[str]) -> None:
        self._frozen = staging.frozen_dir(self.local_dir)
        unlinked = staging.freeze(self.local_dir, names, self._frozen)
        if unlinked and not self._unlinked_said:
            self._unlinked_said = True
            said = f"{unlinked} file(s) of {self.local_dir} cannot be hard-linked"
            print(f"warning: {said}: they go up as read, maybe mixed", file=sys.stderr)

    def _upload(self, only: str, files: list[str]) -> int:
        if not only and not self._sent:
            self._seed(files)
        changed = self._changed(files)
        if self.lease is not None:  # nothing is written without the lease: LeaseLost
            self._in_time()
            self.lease.renew(timeout=self._timeout())
        self._send(changed)
        if not only:
            changed += self._verify(files)
        if self.lease is not None:
            self.lease.check()  # the heartbeat may have found it taken over meanwhile
        if changed or not only:
            self._in_time()
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
        for name in self._listing():
            if staging.mirrored(name) and name not in local and name in self._sent:
                self._in_time()
                self._bucket.blob(self._name(name)).delete(
                    retry=self._retry(), timeout=self._timeout()
                )
                self._sent.pop(name, None)
