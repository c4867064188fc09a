"""`make bucket`: `python -m deploy.bucket gs://BUCKET[/PATH] [--create]`.

The one program of deploy/ that needs .venv (the storage client); it runs with
.venv's python, after `make` has made it.
"""

from __future__ import annotations

import argparse
import sys

from trainer import storage


def main(argv: list[str]) -> int:
    """Can runs go to gs://BUCKET[/PATH]? With --create, a missing bucket is made."""
    parser = argparse.ArgumentParser(prog="python -m deploy.bucket", description=main.__doc__)
    parser.add_argument("url", help="gs://BUCKET or gs://BUCKET/PATH")
    parser.add_argument("--create", action="store_true", help="create the bucket if missing")
    parser.add_argument(
        "--location", default="US", help="where a new bucket lives (make: the cluster's region)"
    )
    parser.add_argument("--project", default=None, help="a new bucket's project")
    args = parser.parse_args(argv)
    try:
        bucket, _ = storage.parse_url(args.url)
        # A new bucket has uniform access, which Workload Identity's direct binding needs
        # (make setup), and no soft delete: a run overwrites its event files every minute,
        # and soft delete would keep (and bill) each overwritten copy for 7 days.
        found = storage.check_bucket(
            storage.make_client(),
            bucket,
            create=args.create,
            location=args.location,
            project=args.project,
            uniform_access=True,
            soft_delete_seconds=0,
        )
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except storage.StorageError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    verb = "created" if found.created else "exists and is usable"
    print(f"gs://{bucket} {verb}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
