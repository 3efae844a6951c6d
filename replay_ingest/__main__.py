"""`python -m replay_ingest` is the `replay-ingest` console script."""

import sys

from replay_ingest.cli import main

sys.exit(main())
