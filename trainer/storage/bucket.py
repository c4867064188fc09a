"""gs:// URLs, the client, and whether a bucket can hold runs (`make bucket`)."""

from __future__ import annotations

import base64
import dataclasses
import re

import requests
from google.api_core import exceptions as api_exceptions
from google.auth import exceptions as auth_exceptions
from google.cloud import storage
from google.cloud.storage import retry as storage_retry

from trainer.errors import TrainerError

MARKER = "SYNCED.json"  # a run's last complete upload (mirror.py writes it last)
_URL = re.compile(r"^gs://([a-z0-9][a-z0-9._-]{1,220}[a-z0-9])(?:/(.*))?$")


class StorageError(TrainerError):
    """Storage could not be reached or used; one line for the user, exit code 1."""


class StorageUnavailable(StorageError):
    """Storage did not answer, or answered only server errors, for the whole retry time."""


class OutOfTime(StorageError):
    """An upload's deadline passed before these files were uploaded."""

    def __init__(self, url: str, files: list[str]):
        self.files = files
        super().__init__(f"ran out of time uploading {len(files)} file(s) to {url}")


# What a request that never got a usable answer ends in (DEFAULT_RETRY retries each of
# them, then raises RetryError).
UNAVAILABLE = (
    api_exceptions.RetryError,
    api_exceptions.ServerError,
    requests.exceptions.ConnectionError,
    requests.exceptions.Timeout,
)


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


def retry_policy(deadline: float):
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


def check_bucket(
    client,
    bucket: str,
    create: bool = False,
    location: str = "US",
    *,
    project: str | None = None,
    uniform_access: bool = False,
    soft_delete_seconds: int | None = None,
    deadline: float = 30.0,
) -> BucketCheck:
    """Tells apart a missing bucket (created when asked) from one you cannot use.

    Lists at most one object rather than reading the bucket's metadata: listing
    needs storage.objects.list, which roles/storage.objectAdmin (all the pods are
    granted) includes, while get_bucket needs storage.buckets.get, which it does not.
    A bucket it creates goes to `project` (the client's by default), with uniform
    bucket-level access if asked, and `soft_delete_seconds` of soft delete (None: the
    bucket's default, 7 days; 0: none). Storage that does not answer within `deadline`
    seconds (retries included) is StorageUnavailable.
    """
    try:
        blobs = client.list_blobs(
            bucket, max_results=1, retry=retry_policy(deadline), timeout=deadline
        )
        next(iter(blobs), None)
        return BucketCheck(bucket, exists=True)
    except UNAVAILABLE as e:
        raise StorageUnavailable(
            f"storage did not answer usably for {deadline:.0f} s while checking gs://{bucket}: "
            + describe(e)
        ) from None
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
    new = client.bucket(bucket)
    if uniform_access:
        new.iam_configuration.uniform_bucket_level_access_enabled = True
    if soft_delete_seconds is not None:
        new.soft_delete_policy.retention_duration_seconds = soft_delete_seconds
    try:
        client.create_bucket(new, location=location, project=project)
    except api_exceptions.Conflict:
        raise StorageError(f"bucket name gs://{bucket} is taken by another project") from None
    return BucketCheck(bucket, exists=True, created=True)


# Whatever a storage call may raise besides bugs: ours, the client's, the transport's.
FAILURES = (StorageError, api_exceptions.GoogleAPIError, *UNAVAILABLE)


def describe(error: BaseException) -> str:
    """One line for a storage failure: its type and the first line of its message."""
    return f"{type(error).__name__}: {_first_line(error)}"


def _first_line(error: BaseException) -> str:
    """An exception's message without the chained detail a RetryError carries."""
    text = str(getattr(error, "cause", None) or error)
    return text.splitlines()[0][:200] if text else ""


def crc32c(path: str | None = None, data: bytes = b"", size: int = 0) -> str:
    """The CRC32C of `data`, or of the first `size` bytes of the file at `path`, as Cloud
    Storage reports it (base64 of the big-endian digest)."""
    import google_crc32c

    checksum = google_crc32c.Checksum(data)
    if path is not None:
        with open(path, "rb") as f:
            while size > 0 and (chunk := f.read(min(1 << 20, size))):
                checksum.update(chunk)
                size -= len(chunk)
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
