"""`python -m trainer.storage check gs://BUCKET[/PATH] [--create]`."""

import sys

from trainer.storage.bucket import main

sys.exit(main(sys.argv[1:]))
