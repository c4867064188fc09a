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
    parser.add_argument("--location", default="US", help="location of a bucket to create")
    args = parser.parse_args(argv)
    try:
        bucket, _ = storage.parse_url(args.url)
        found = storage.check_bucket(
            storage.make_client(), bucket, create=args.create, location=args.location
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
