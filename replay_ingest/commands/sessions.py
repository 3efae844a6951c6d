"""Session summaries for analysts (`list`), one session's events (`get`) and a signed
link that opens one session in the player without a key (`share`).

`get` prints the events as JSON lines whether the session is still in ClickHouse or
already spilled to S3. `share` signs with REPLAY_SHARE_KEY, else the key the worker
generated into REPLAY_DATA_DIR (so run it with the worker's settings), and prints the
link as its last line.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from config.settings import Settings
from replay_ingest.query import FORMATS, print_query, printable, run_query

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
    about = "a signed link that opens a session in the player, until it expires"
    sharing = actions.add_parser("share", help=about, description=about)
    sharing.add_argument("--team", type=int, required=True, help="team id")
    sharing.add_argument("--session", required=True, help="session id")
    sharing.add_argument(
        "--expires",
        metavar="DURATION",
        help="the link's life: 90s, 15m, 12h, 7d, 2w or seconds, at most 365 days "
        "(default: REPLAY_SHARE_EXPIRES_SECONDS, 7 days)",
    )


def handle(settings: Settings, args: argparse.Namespace) -> int:
    actions = {"get": _get, "list": _list, "share": _share}
    return actions[args.action](settings, args)


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


def _share(settings: Settings, args: argparse.Namespace) -> int:
    """Print a share link of an existing session, the URL as the last line."""
    import time

    from api.params import BadRequest, parse_expires, parse_session_id, parse_team_id
    from api.share import share_url, sign
    from config.settings import ensure_share_key

    try:
        team = parse_team_id(str(args.team))
        session = parse_session_id(args.session)
        seconds = parse_expires(args.expires, settings.share_expires_seconds)
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    missing = _missing(settings, team, session)
    if missing:
        print(f"error: {missing}", file=sys.stderr)
        return 1
    expires_at = int(time.time()) + seconds
    token = sign(ensure_share_key(settings).encode(), team, session, expires_at)
    until = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
    print(f"share link of session {session} of team {team}, valid until {until}:")
    print(share_url(settings.base_url, team, session, token))
    return 0


def _missing(settings: Settings, team: int, session: str) -> str | None:
    """Why no link can be made (no such session, ClickHouse unreachable), or None: a
    link to nothing would only fail later, in the viewer's browser."""
    from sinks.clickhouse.player import session_known

    try:
        _, rows = run_query(settings, session_known(team, session).inline())
    except Exception as exc:
        return printable(exc)
    return None if rows else "no such session"
