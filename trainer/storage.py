"""Google Cloud Storage: a run mirrored between a local staging directory and gs://.

The only module that imports google.cloud.storage. Training writes locally (TensorFlow
2.15's own gs:// file system cannot be pointed at a test server), and a `Syncer`
uploads the run in the background. Each upload sends data files first, TensorFlow's
`checkpoints/checkpoint` pointer after them and the `SYNCED.json` marker last, so a
pointer on GCS never names a checkpoint whose files are missing, and a run without
the marker was never completely uploaded.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import sys
import threading
import time
import warnings

warnings.filterwarnings("ignore", category=FutureWarning, module="google")

from google.api_core import exceptions as api_exceptions  # noqa: E402
from google.auth import exceptions as auth_exceptions  # noqa: E402
from google.cloud import storage  # noqa: E402
from google.cloud.storage import retry as storage_retry  # noqa: E402
from google.cloud.storage import transfer_manager  # noqa: E402

MARKER = "SYNCED.json"
LEASE = ".lease.json"  # in the bucket only: never a local file, never uploaded
# Uploaded after everything else but the marker: TensorFlow follows these to data files.
POINTERS = ("checkpoints/checkpoint",)
_URL = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?$")


class StorageError(Exception):
    """Storage could not be reached or used; one line for the user."""


def parse_url(url: str) -> tuple[str, str]:
    """(bucket, prefix without slashes) of a gs:// URL; ValueError if malformed."""
    match = _URL.match(url)
    if not match or "//" in "/" + (match.group(2) or ""):
        raise ValueError(
            f"malformed gs:// path {url!r}: expected gs://BUCKET[/PATH], where BUCKET has "
            "3-63 characters (up to 222 with dots): lowercase letters, digits, dashes, "
            "underscores and dots, starting and ending with a letter or digit"
        )
    return match.group(1), (match.group(2) or "").strip("/")


def join(url: str, *parts: str) -> str:
    return "/".join([url.rstrip("/"), *parts])


def _retry(deadline: float):
    return storage_retry.DEFAULT_RETRY.with_deadline(deadline)


def make_client() -> storage.Client:
    """A client from the environment's credentials; StorageError if there are none."""
    try:
        return storage.Client()
    except auth_exceptions.DefaultCredentialsError:
        raise StorageError(
            "no Google Cloud credentials: run `gcloud auth application-default login` or "
            "set GOOGLE_APPLICATION_CREDENTIALS to a service account key file"
        ) from None


@dataclasses.dataclass
class BucketCheck:
    """What `check_bucket` found."""

    bucket: str
    exists: bool
    created: bool = False


def check_bucket(client, bucket: str, create: bool = False, location: str = "US") -> BucketCheck:
    """Tells apart a missing bucket (created when asked) from one you cannot use.

    Lists at most one object rather than reading the bucket's metadata: listing
    needs storage.objects.list, which roles/storage.objectAdmin (all the pods are
    granted) includes, while get_bucket needs storage.buckets.get, which it does not.
    """
    try:
        next(iter(client.list_blobs(bucket, max_results=1, retry=_retry(30))), None)
        return BucketCheck(bucket, exists=True)
    except api_exceptions.NotFound:
        if not create:
            raise StorageError(
                f"bucket gs://{bucket} does not exist; create it with "
                f"`make bucket BUCKET={bucket}` (or pass --create)"
            ) from None
    except api_exceptions.Forbidden:
        raise StorageError(
            f"bucket gs://{bucket} exists but these credentials may not list its objects; "
            "grant them roles/storage.objectAdmin on the bucket (`make setup` does so for the "
            "pods' service account), or choose another bucket"
        ) from None
    except auth_exceptions.RefreshError as e:
        raise StorageError(f"Google Cloud credentials were refused: {e}") from None
    try:
        client.create_bucket(bucket, location=location)
    except api_exceptions.Conflict:
        raise StorageError(f"bucket name gs://{bucket} is taken by another project") from None
    return BucketCheck(bucket, exists=True, created=True)


class RunMirror:
    """One run directory, kept in step between `local_dir` and `url`."""

    def __init__(self, client, local_dir: str, url: str, retry_deadline: float = 60.0):
        self._client, self.local_dir, self.url = client, local_dir, url
        self._bucket_name, self._prefix = parse_url(url)
        self._bucket = client.bucket(self._bucket_name)
        self._retry = _retry(retry_deadline)
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


class RunBusy(StorageError):
    """Another live trainer holds the run's lease in the bucket."""


class Lease:
    """One writer per gs:// run across machines: RUN/.lease.json in the bucket.

    Taken with a create-only write (if_generation_match=0) and renewed at every full
    upload; a lease not renewed for `seconds` belongs to a dead trainer (a pod
    killed without SIGTERM) and is taken over, after waiting for it to lapse. A
    lease renewed meanwhile means a live trainer: RunBusy. Cloud Storage makes the
    create and the take-over atomic; the storage emulator does not check the
    preconditions, so the tests cover the protocol, not the race.
    """

    def __init__(self, bucket, name: str, holder: dict, seconds: float = 300.0, log=None):
        self._bucket, self._name, self._holder, self.seconds = bucket, name, holder, seconds
        self._log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._generation = None

    def _write(self, generation: int) -> None:
        blob = self._bucket.blob(self._name)
        body = {**self._holder, "expires": time.time() + self.seconds}
        blob.upload_from_string(json.dumps(body), if_generation_match=generation)
        self._generation = blob.generation

    def take(self) -> None:
        """Holds the lease, waiting out a lapsed holder's; RunBusy if it is renewed."""
        while True:
            current = self._bucket.get_blob(self._name)
            if current is None:
                try:
                    return self._write(0)
                except api_exceptions.PreconditionFailed:
                    continue  # created meanwhile: look again
            generation = current.generation  # before the download, which may reset it
            held = json.loads(current.download_as_text())
            wait = held.get("expires", 0) - time.time()
            if wait > 0:
                self._log(
                    f"The run's lease is held by pid {held.get('pid')} on {held.get('host')}; "
                    f"waiting {wait:.0f} s for it to lapse (a live trainer renews it)"
                )
                time.sleep(wait + 1)
                latest = self._bucket.get_blob(self._name)
                if latest is not None and latest.generation != generation:
                    raise RunBusy(
                        f"the run is being trained by pid {held.get('pid')} on "
                        f"{held.get('host')}, which renews its lease in the bucket; wait for "
                        "it, stop it, or choose another --run"
                    )
            try:
                return self._write(generation)
            except api_exceptions.PreconditionFailed:
                continue  # someone else took it first: look again

    def renew(self) -> None:
        if self._generation is not None:
            self._write(self._generation)

    def release(self) -> None:
        if self._generation is not None:
            with contextlib.suppress(api_exceptions.GoogleAPIError):
                self._bucket.blob(self._name).delete(if_generation_match=self._generation)
            self._generation = None


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
        for blob in client.list_blobs(bucket, prefix=start, retry=_retry(60))
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


def main(argv: list[str]) -> int:
    """`python -m trainer.storage check gs://BUCKET[/PATH] [--create]`: can runs go there?"""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m trainer.storage", description=main.__doc__)
    parser.add_argument("command", choices=["check"], help="what to do")
    parser.add_argument("url", help="gs://BUCKET or gs://BUCKET/PATH")
    parser.add_argument("--create", action="store_true", help="create the bucket if missing")
    parser.add_argument("--location", default="US", help="location of a bucket to create")
    args = parser.parse_args(argv)
    try:
        bucket, _ = parse_url(args.url)
        found = check_bucket(make_client(), bucket, create=args.create, location=args.location)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    verb = "created" if found.created else "exists and is usable"
    print(f"gs://{bucket} {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
