"""Start the embedded local stack and feed it until Ctrl-C.

A Tansu broker, SeaweedFS and a worker on chDB under REPLAY_DATA_DIR, fed by the
generator, with a live line of counts. Ctrl-C stops everything it started; the
ClickHouse and S3 data persist in the data directory.
"""

from __future__ import annotations

import argparse

from config.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--rate", type=float, default=20.0, help="capture messages per second (default: 20)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="the generator's first seed (default: 0)"
    )


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from replay_ingest.run import run_local_stack

    return run_local_stack(settings, rate=args.rate, seed=args.seed)
