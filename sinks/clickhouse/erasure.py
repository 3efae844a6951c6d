"""What erasure reads and writes (the erasure package, and the workers' tombstones):
statements only, like sinks.clickhouse.queries, whose Query they use."""

from __future__ import annotations

from sinks.clickhouse.queries import Query
from sinks.clickhouse.schema import DELETIONS_TABLE


def tombstones(since_ms: int) -> Query:
    """The erasures requested since `since_ms` (epoch ms), whatever their state, as the
    workers remember them: team_id, kind, sessions (those asked for and those found),
    distinct_id, before_ms (0 unless kind is `before`)."""
    return Query(
        "SELECT team_id, kind, arrayDistinct(arrayConcat(session_ids, sessions)) AS sessions, "
        "distinct_id, toUnixTimestamp64Milli(before) AS before_ms "
        f"FROM {DELETIONS_TABLE} FINAL "
        "WHERE requested_at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')",
        {"since": since_ms},
    )
