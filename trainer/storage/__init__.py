"""Google Cloud Storage, the project's only client of it.

Training writes locally (TensorFlow 2.15's own gs:// file system cannot be pointed
at a test server), and a `Syncer` (sync.py) uploads the run in the background through mirror.py;
bucket.py checks buckets and parses gs:// URLs; lease.py keeps one writer per run;
staging.py is the local side of a mirrored run; transfer.py uploads many files at once.
"""

import warnings

# Before any google import (this runs before every submodule): the Google libraries
# warn about Python and grpc versions at import, which is noise in every run's log.
warnings.filterwarnings("ignore", category=FutureWarning, module="google")

from trainer.storage.bucket import (  # noqa: E402
    FAILURES,
    MARKER,
    StorageError,
    StorageUnavailable,
    check_bucket,
    describe,
    join,
    latest_run,
    make_client,
    parse_url,
)
from trainer.storage.lease import Lease, LeaseLost, RunBusy  # noqa: E402
from trainer.storage.mirror import RunMirror  # noqa: E402
from trainer.storage.sync import Syncer, bound_sigterm  # noqa: E402

__all__ = [
    "FAILURES",
    "MARKER",
    "Lease",
    "LeaseLost",
    "RunBusy",
    "RunMirror",
    "StorageError",
    "StorageUnavailable",
    "Syncer",
    "bound_sigterm",
    "check_bucket",
    "describe",
    "join",
    "latest_run",
    "make_client",
    "parse_url",
]
