"""Move sessions past their team's retention from ClickHouse to S3: one pass, now.

A running worker's leader does the same every REPLAY_SPILL_INTERVAL_SECONDS; this is
for a run on demand (on chDB: while no worker runs). Rows are deleted only after their
object is verified. Exit status 1 names every session that failed; the next pass tries
them again.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from config.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    # Earlier releases required `--once`; a pass is what the command does, so the flag
    # is accepted (hidden) for scripts written then and changes nothing.
    parser.add_argument("--once", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--as-of",
        metavar="WHEN",
        help="judge retention as of this ISO 8601 date-time instead of now (UTC if naive): "
        "a later moment archives sessions ahead of their time",
    )


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from api.params import BadRequest, parse_time
    from config.teams import load_registry
    from retention.spill import Spiller
    from sinks.clickhouse.schema import connect, ensure_schema
    from sinks.s3 import ObjectStore, S3Rejected, S3Unavailable

    try:
        as_of = parse_time(args.as_of, "--as-of")
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    registry = load_registry(settings.teams_file)
    client = connect(settings.clickhouse_url)
    ensure_schema(client, settings.performance_ttl_days)
    store = ObjectStore(
        settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
    )
    try:
        report = asyncio.run(Spiller(settings, registry, client, store).spill_once(as_of))
    except S3Unavailable as exc:
        print(f"error: S3 unavailable, nothing deleted: {exc}", file=sys.stderr)
        return 1
    except S3Rejected as exc:  # the bucket itself, before any session
        print(f"error: S3 refused the bucket, nothing deleted: {exc}", file=sys.stderr)
        return 1
    finally:
        client.close()
    print(f"archived {report.archived} session(s)")
    for failure in report.failures:
        print(
            f"error: team {failure.team_id} session {failure.session_id!r} not archived "
            f"({failure.reason}; nothing deleted, the next run tries again): {failure.error}",
            file=sys.stderr,
        )
    return 1 if report.failures else 0
