"""Inspect dead letters (`list`) and re-inject them after a fix (`replay`).

`list` counts letters by DLQ, reason and stage, with samples. `replay` sends the letters
with one reason back to the input topic of their DLQ, once: a letter replayed before is
skipped, so running the same replay twice replays nothing the second time. Both skip
the letters of erased sessions and persons (`replay-ingest delete`), and say how many.
Letters' strings are printed with control characters escaped.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from config.settings import Settings
from streams.topics import DLQ_TOPICS

if TYPE_CHECKING:
    from replay_ingest.dlq import Letter


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    about = "counts by DLQ, reason and stage, with samples"
    listing = actions.add_parser("list", help=about, description=about)
    listing.add_argument("--reason", help="only letters with this dlq-reason")
    about = "re-inject into the input topic of each letter's DLQ, once"
    replay = actions.add_parser("replay", help=about, description=about)
    replay.add_argument("--reason", required=True, help="the dlq-reason of the letters to replay")
    replay.add_argument("--dry-run", action="store_true", help="count, send nothing")
    for action in (listing, replay):
        action.add_argument(
            "--topic", choices=sorted(DLQ_TOPICS), help="one DLQ topic (default: all)"
        )
        action.add_argument(
            "--since", help="letters written at or after: ISO 8601 date or date-time (UTC if naive)"
        )


def _erased(settings: Settings) -> Callable[[Letter], bool]:
    """Whether a letter is of an erased session or person (every erasure ever made)."""
    from config.teams import load_registry
    from replay_ingest.dlq_erased import erased
    from replay_ingest.query import run_query
    from sinks.clickhouse.erasure import tombstones
    from streams.tombstones import Tombstones

    try:
        _, rows = run_query(settings, tombstones(0).inline())
    except Exception as exc:
        if "UNKNOWN_TABLE" not in str(exc):
            raise
        rows = []  # no worker ever made the tables: nothing was erased
    stones, registry = Tombstones.of(rows), load_registry(settings.teams_file)  # type: ignore[arg-type]
    return lambda letter: erased(stones, letter, registry)


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from api.params import BadRequest, parse_time
    from replay_ingest import dlq

    try:
        since = parse_time(args.since, "--since")
        topics = dlq.dlq_topics(args.topic)
    except (BadRequest, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        erased = _erased(settings)
    except Exception as exc:  # a letter of an erased session must never go back
        print(f"error: cannot read the erasures, nothing done: {exc}", file=sys.stderr)
        return 1
    bootstrap = settings.bootstrap
    if args.action == "list":
        print("\n".join(dlq.run_list(bootstrap, topics, args.reason, since, erased)))
        return 0
    result = asyncio.run(dlq.replay(bootstrap, topics, args.reason, since, args.dry_run, erased))
    print("\n".join(result.lines(args.reason, args.dry_run)))
    return 0
