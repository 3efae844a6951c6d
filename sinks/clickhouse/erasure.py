"""What erasure reads and writes (the erasure package, and the workers' tombstones):
statements only, like sinks.clickhouse.queries, whose Query they use."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sinks.clickhouse.queries import DELETE_SETTINGS, Insert, Query
from sinks.clickhouse.schema import (
    ARCHIVE_PARTS_TABLE,
    ARCHIVE_TABLE,
    DELETIONS_TABLE,
    GAPS_TABLE,
    PERFORMANCE_TABLE,
    SNAPSHOT_TABLE,
    SUMMARY_TABLE,
)


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


# -- requests and their proof (the erasure package) ---------------------------------------

DELETION_COLUMNS = ("deletion_id", "team_id", "kind", "session_ids", "distinct_id", "before",
                    "requested_by", "requested_at", "state", "sessions", "removed", "s3_keys",
                    "completed_at", "version")  # fmt: skip
_DELETION_FIELDS = (
    "deletion_id, team_id, kind, session_ids, distinct_id, "
    "toUnixTimestamp64Milli(before) AS before_ms, requested_by, "
    "toUnixTimestamp64Milli(requested_at) AS requested_ms, toString(state) AS state, "
    "sessions, removed, s3_keys, toUnixTimestamp64Milli(completed_at) AS completed_ms, "
    "toUnixTimestamp64Milli(version) AS version_ms"
)
# The tiers a session's data lives in, each with its rows' session column, by table.
SESSION_TABLES = (
    SNAPSHOT_TABLE,
    SUMMARY_TABLE,
    PERFORMANCE_TABLE,
    GAPS_TABLE,
    ARCHIVE_PARTS_TABLE,
    ARCHIVE_TABLE,
)
_TEAM_SESSIONS = "team_id = {team_id:Int64} AND has({sessions:Array(String)}, session_id)"
# the person's performance entries go whatever their session (one may have none)
_PERSON = "(team_id = {team_id:Int64} AND distinct_id = {distinct_id:String} AND {person:Bool})"


def record_deletion(row: Mapping[str, Any]) -> Insert:
    """A version of a request's row (every column of DELETION_COLUMNS): the latest wins."""
    if set(row) != set(DELETION_COLUMNS):
        raise ValueError(f"a deletion row has the columns {DELETION_COLUMNS}, not {tuple(row)}")
    return Insert(DELETIONS_TABLE, DELETION_COLUMNS, [[row[c] for c in DELETION_COLUMNS]])


def deletion(team_id: int, deletion_id: str) -> Query:
    """One request of the team in its latest version (the proof once done)."""
    return Query(
        f"SELECT {_DELETION_FIELDS} FROM {DELETIONS_TABLE} FINAL "
        "WHERE team_id = {team_id:Int64} AND deletion_id = {deletion_id:String}",
        {"team_id": team_id, "deletion_id": deletion_id},
    )


def unfinished_deletions(limit: int = 100) -> Query:
    """The requests not done, oldest first: what the executor picks up (after a crash too)."""
    return Query(
        f"SELECT {_DELETION_FIELDS} FROM {DELETIONS_TABLE} FINAL WHERE state != 'done' "
        "ORDER BY requested_at, deletion_id LIMIT {limit:UInt32}",
        {"limit": limit},
    )


def erased(team_id: int, session_id: str) -> Query:
    """One row if the session is in an erasure request of its team (asked for, or found
    when the request was resolved), whatever its state: the read API answers 410."""
    return Query(
        f"SELECT 1 FROM {DELETIONS_TABLE} FINAL WHERE team_id = {{team_id:Int64}} "
        "AND (has(session_ids, {session_id:String}) OR has(sessions, {session_id:String})) "
        "LIMIT 1",
        {"team_id": team_id, "session_id": session_id},
    )


def sessions_of_person(team_id: int, distinct_id: str) -> Query:
    """The sessions whose summary, raw rows or performance entries carry the distinct_id
    (an archived session keeps its summary, with the distinct_id, next to its objects)."""
    person = "team_id = {team_id:Int64} AND distinct_id = {distinct_id:String}"
    return Query(
        f"SELECT DISTINCT session_id FROM (SELECT session_id FROM {SUMMARY_TABLE} WHERE {person} "
        f"UNION ALL SELECT session_id FROM {SNAPSHOT_TABLE} WHERE {person} "
        f"UNION ALL SELECT session_id FROM {PERFORMANCE_TABLE} WHERE {person}) "
        "WHERE session_id != '' ORDER BY session_id",
        {"team_id": team_id, "distinct_id": distinct_id},
    )


def sessions_before(team_id: int, before_ms: int) -> Query:
    """The sessions of the team that started before the moment (epoch ms): a summary
    part, a raw row or an archive entry starting before it."""
    team, moment = "team_id = {team_id:Int64}", "fromUnixTimestamp64Milli({before:Int64}, 'UTC')"
    return Query(
        f"SELECT DISTINCT session_id FROM (SELECT session_id FROM {SUMMARY_TABLE} "
        f"WHERE {team} AND min_first_timestamp < {moment} "
        f"UNION ALL SELECT session_id FROM {SNAPSHOT_TABLE} "
        f"WHERE {team} AND first_timestamp < {moment} "
        f"UNION ALL SELECT session_id FROM {ARCHIVE_TABLE} WHERE {team} AND start_time < {moment}) "
        "WHERE session_id != '' ORDER BY session_id",
        {"team_id": team_id, "before": before_ms},
    )


def session_starts(team_id: int, sessions: list[str]) -> Query:
    """session_id and start (epoch ms) of the sessions with a summary: where the spill
    would have put part 0 (an upload a crash left unindexed is found by that key)."""
    return Query(
        "SELECT session_id, toUnixTimestamp64Milli(min(min_first_timestamp)) AS start_ms "
        f"FROM {SUMMARY_TABLE} WHERE {_TEAM_SESSIONS} GROUP BY session_id",
        {"team_id": team_id, "sessions": sessions},
    )


def archived_keys(team_id: int, sessions: list[str]) -> Query:
    """The object keys the archive index knows for the sessions (parts and part 0)."""
    return Query(
        f"SELECT DISTINCT key FROM (SELECT key FROM {ARCHIVE_PARTS_TABLE} WHERE {_TEAM_SESSIONS} "
        f"UNION ALL SELECT key FROM {ARCHIVE_TABLE} WHERE {_TEAM_SESSIONS}) "
        "WHERE key != '' ORDER BY key",
        {"team_id": team_id, "sessions": sessions},
    )


def _where(table: str) -> str:
    """The rows of `table` an erasure removes: the sessions', and for a person every
    performance entry of theirs."""
    if table == PERFORMANCE_TABLE:
        return f"(({_TEAM_SESSIONS}) OR {_PERSON})"
    return f"({_TEAM_SESSIONS})"


def _values(team_id: int, sessions: list[str], distinct_id: str | None) -> dict[str, Any]:
    return {
        "team_id": team_id,
        "sessions": sessions,
        "distinct_id": distinct_id or "",
        "person": distinct_id is not None,
    }


def tier_counts(team_id: int, sessions: list[str], distinct_id: str | None = None) -> Query:
    """One row, a column per table of SESSION_TABLES: how many rows of the sessions it
    holds as readers see them (FINAL: a batch written twice is one row)."""
    columns = ", ".join(
        f"(SELECT count() FROM {table} FINAL WHERE {_where(table)}) AS {table}"
        for table in SESSION_TABLES
    )
    return Query(f"SELECT {columns}", _values(team_id, sessions, distinct_id))


def delete_sessions(
    table: str, team_id: int, sessions: list[str], distinct_id: str | None = None
) -> Query:
    """A lightweight delete of the sessions' rows of `table` (one of SESSION_TABLES):
    hidden from every read at once, physically gone when their parts next merge."""
    if table not in SESSION_TABLES:
        raise ValueError(f"{table} holds no session's rows")
    return Query(
        f"DELETE FROM {table} WHERE {_where(table)}",
        _values(team_id, sessions, distinct_id),
        DELETE_SETTINGS,
    )
