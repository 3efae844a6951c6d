"""Session summaries for analysts (`list`) and one session's events (`get`).

`get` prints the events as JSON lines whether the session is still in ClickHouse or
already spilled to S3.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from config.settings import Settings
from replay_ingest.query import FORMATS, print_query, run_query

TIME_HELP = "ISO 8601 date or date-time (UTC if naive)"


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    about = "a team's newest session summaries"
    listing = actions.add_parser("list", help=about, description=about)
    listing.add_argument("--team", type=int, required=True, help="team id")
    listing.add_argument("--since", help=f"sessions starting at or after: {TIME_HELP}")
    listing.add_argument("--until", help=f"sessions starting before: {TIME_HELP}")
    listing.add_argument("--limit", type=int, default=100, help="at most this many (default: 100)")
    listing.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    about = "a session's events as JSON lines, from ClickHouse or S3"
    getting = actions.add_parser("get", help=about, description=about)
    getting.add_argument("--team", type=int, required=True, help="team id")
    getting.add_argument("--session", required=True, help="session id")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    return _get(settings, args) if args.action == "get" else _list(settings, args)


def _list(settings: Settings, args: argparse.Namespace) -> int:
    from api.params import BadRequest, parse_time
    from sinks.clickhouse.queries import sessions_query

    try:
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    query = sessions_query(args.team, since, until, args.limit)
    return print_query(settings, query.inline(), args.format)


def _get(settings: Settings, args: argparse.Namespace) -> int:
    """Print a session's events as JSON lines, from ClickHouse or S3 alike."""
    from retention.read import session_lines
    from sinks.clickhouse.queries import Query
    from sinks.ids import is_safe_id
    from sinks.s3 import ObjectStore

    if not is_safe_id(args.session):
        print("error: --session is not a valid id", file=sys.stderr)
        return 2
    store = ObjectStore(settings.s3_url, settings.s3_endpoint_url)

    def query(statement: Query) -> tuple[list[str], list[Sequence[Any]]]:
        return run_query(settings, statement.inline())  # text: it may go through /api/sql

    async def main() -> int:
        count = 0
        async for line in session_lines(query, store, args.team, args.session):
            sys.stdout.buffer.write(line + b"\n")
            count += 1
        return count

    if asyncio.run(main()) == 0:
        print("error: no such session", file=sys.stderr)
        return 1
    return 0
