"""Every read of ClickHouse the API, the CLI and the retention job make, and every
statement the retention job runs.

Values never enter the SQL text: a statement names each one as ``{name:Type}`` and
clickhouse-connect sends the values apart (``param_<name>`` over HTTP, chDB's
``params``), where ClickHouse parses each as a literal of its type. So a session_id is
safe in a query whatever it holds (ids are still checked where they come in, by
sinks.ids, for the S3 keys), and nothing depends on ``assert`` (gone under ``python -O``).
Table and column names come from sinks.clickhouse.schema, never from input. Every
statement has at least one placeholder: without one, clickhouse-connect would fall back
to binding on the client side.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from clickhouse_connect.driver.binding import str_query_value
from clickhouse_connect.driver.client import Client

from sinks.clickhouse.schema import (
    ARCHIVE_PART,
    ARCHIVE_PARTS_TABLE,
    ARCHIVE_TABLE,
    PERFORMANCE_COLUMNS,
    PERFORMANCE_TABLE,
    SESSION_FIELDS,
    SNAPSHOT_TABLE,
    SUMMARY_TABLE,
    SUMMARY_VIEW,
)
from sinks.clickhouse.summary import NO_URL_TIMESTAMP

# Synchronous deletes; the IN subquery reads the parts index, so the rows it names are
# archived on every replica (hence allowed although not deterministic).
DELETE_SETTINGS = {
    "lightweight_deletes_sync": 2,
    "mutations_sync": 2,
    "allow_nondeterministic_mutations": 1,
}
PART_COLUMNS = ("team_id", "session_id", "part", "state", "key", "bytes", "etag", "sha256",
                "event_count", "chunk_ids")  # fmt: skip
SESSION_COLUMNS = ("team_id", "session_id", "state", "key", "bytes", "etag", "sha256",
                   "event_count", "start_time", "end_time")  # fmt: skip
_PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")
# the conditions of one session and of its archived chunk_ids (shared with the
# modules beside this one: sinks.clickhouse.player)
SESSION = "team_id = {team_id:Int64} AND session_id = {session_id:String}"
_PARTS_CHUNKS = f"SELECT arrayJoin(chunk_ids) FROM {ARCHIVE_PARTS_TABLE} WHERE {SESSION}"
ARCHIVED = f"chunk_id IN ({_PARTS_CHUNKS})"
# in no part 0..upto; with upto = -1 no part (part is a UInt32): every row qualifies
_NOT_ARCHIVED = f"chunk_id NOT IN ({_PARTS_CHUNKS} AND part <= {{upto:Int64}})"

SUMMARY_FIELDS = ", ".join(SESSION_FIELDS)


@dataclass(frozen=True, slots=True)
class Query:
    """One statement, its values (for its ``{name:Type}`` placeholders) and settings."""

    sql: str
    parameters: Mapping[str, Any]
    settings: Mapping[str, Any] = field(default_factory=dict)

    def inline(self) -> str:
        """The statement as one text, for a channel that carries text only (the worker's
        ``POST /api/sql``, which the CLI uses while the worker owns chDB): each value
        becomes a typed literal written by clickhouse-connect's own formatter."""

        def literal(match: re.Match[str]) -> str:
            return f"CAST({str_query_value(self.parameters[match[1]])} AS {match[2]})"

        return _PLACEHOLDER.sub(literal, self.sql)


@dataclass(frozen=True, slots=True)
class Insert:
    """Rows for one table, by column name (the columns not named take their defaults)."""

    table: str
    columns: tuple[str, ...]
    rows: list[list[Any]]


def fetch(client: Client, query: Query) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Column names and rows of a read."""
    parameters, settings = dict(query.parameters), dict(query.settings)
    result = client.query(query.sql, parameters=parameters, settings=settings)
    return list(result.column_names), [tuple(row) for row in result.result_rows]


def execute(client: Client, statement: Query | Insert) -> None:
    """Run a statement that returns nothing (an insert, a delete)."""
    if isinstance(statement, Insert):
        client.insert(statement.table, statement.rows, column_names=list(statement.columns))
    else:
        parameters, settings = dict(statement.parameters), dict(statement.settings)
        client.command(statement.sql, parameters=parameters, settings=settings)


def _insert(table: str, columns: tuple[str, ...], row: Mapping[str, Any]) -> Insert:
    """One row of `table`, which must give exactly `columns`."""
    if set(row) != set(columns):
        raise ValueError(f"a row of {table} has the columns {columns}, not {tuple(row)}")
    return Insert(table, columns, [[row[column] for column in columns]])


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


# -- the summary API and the CLI ---------------------------------------------------------


def sessions_query(
    team_id: int, since: datetime | None = None, until: datetime | None = None, limit: int = 100
) -> Query:
    """Newest sessions of a team that started in [since, until) (a bound may be absent)."""
    where, values = ["team_id = {team_id:Int64}"], {"team_id": team_id, "limit": limit}
    if since is not None:
        where.append("start_time >= fromUnixTimestamp64Milli({since:Int64}, 'UTC')")
        values["since"] = _ms(since)
    if until is not None:
        where.append("start_time < fromUnixTimestamp64Milli({until:Int64}, 'UTC')")
        values["until"] = _ms(until)
    return Query(
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} WHERE {' AND '.join(where)} "
        "ORDER BY start_time DESC, session_id LIMIT {limit:UInt32}",
        values,
    )


def session_query(team_id: int, session_id: str) -> Query:
    """One session's summary."""
    return Query(
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} WHERE {SESSION}",
        {"team_id": team_id, "session_id": session_id},
    )


def network_query(team_id: int, session_id: str) -> Query:
    """A session's performance entries in time order."""
    columns = ", ".join(c for c in PERFORMANCE_COLUMNS if c not in ("team_id", "session_id"))
    return Query(
        f"SELECT {columns} FROM {PERFORMANCE_TABLE} FINAL WHERE {SESSION} "
        "ORDER BY timestamp, start_time, entry_id",
        {"team_id": team_id, "session_id": session_id},
    )


# -- reading a session back: its hot rows and its archive index --------------------------


def hot_page(
    team_id: int,
    session_id: str,
    upto: int,
    after: tuple[int, str],
    rows: int,
    after_ms: int | None = None,
) -> Query:
    """A page of a session's raw rows (first timestamp ms, chunk_id, window_id, events
    JSON) in no part 0..upto, in (first timestamp, chunk_id) order, after `after`; with
    `after_ms`, only rows that reach it (so a read near a session's end skips the rest)."""
    values = {"team_id": team_id, "session_id": session_id, "upto": upto, "rows": rows}
    values |= {"after_ts": after[0], "after_chunk": after[1]}
    if after_ms is not None:
        values["after_ms"] = after_ms
    reaching = "AND toUnixTimestamp64Milli(last_timestamp) >= {after_ms:Int64} "
    return Query(
        "SELECT toUnixTimestamp64Milli(first_timestamp) AS ts, chunk_id, window_id, "
        f"snapshot_data FROM {SNAPSHOT_TABLE} FINAL WHERE {SESSION} "
        "AND (toUnixTimestamp64Milli(first_timestamp), chunk_id) "
        f"> ({{after_ts:Int64}}, {{after_chunk:String}}) {'' if after_ms is None else reaching}"
        f"AND {_NOT_ARCHIVED} ORDER BY first_timestamp, chunk_id LIMIT {{rows:UInt32}}",
        values,
    )


def archive_entry(team_id: int, session_id: str) -> Query:
    """The session's row in the archive index: state, key, bytes, etag."""
    return Query(
        f"SELECT toString(state), key, bytes, etag FROM {ARCHIVE_TABLE} FINAL WHERE {SESSION}",
        {"team_id": team_id, "session_id": session_id},
    )


def archive_parts(team_id: int, session_id: str) -> Query:
    """The session's parts in order, each in its latest state (complete wins): part,
    state, key, bytes, etag, sha256, event_count."""
    return Query(
        "SELECT part, toString(max(state)), any(key), any(bytes), any(etag), any(sha256), "
        f"any(event_count) FROM {ARCHIVE_PARTS_TABLE} WHERE {SESSION} "
        "GROUP BY part ORDER BY part",
        {"team_id": team_id, "session_id": session_id},
    )


# -- the spill -------------------------------------------------------------------------


def spill_candidates(
    team_cutoffs: Mapping[int, int], default_cutoff: int, latest_cutoff: int
) -> Query:
    """Sessions past retention with raw rows left, and sessions with a part half-done:
    team_id, session_id, distinct_id, start_time, end_time. Cutoffs are epoch ms: a
    team's own (else the default); no row of a session past its cutoff starts after
    `latest_cutoff`, which bounds the scan of the raw rows."""
    cutoff = (
        "fromUnixTimestamp64Milli(transform(team_id, {teams:Array(Int64)}, "
        "{cutoffs:Array(Int64)}, {default_cutoff:Int64}), 'UTC')"
    )
    return Query(
        f"SELECT team_id, session_id, distinct_id, start_time, end_time FROM {SUMMARY_VIEW} "
        f"WHERE (end_time < {cutoff} AND (team_id, session_id) IN (SELECT team_id, "
        f"session_id FROM {SNAPSHOT_TABLE} WHERE first_timestamp < "
        "fromUnixTimestamp64Milli({latest_cutoff:Int64}, 'UTC'))) "
        f"OR (team_id, session_id) IN (SELECT team_id, session_id FROM {ARCHIVE_PARTS_TABLE} "
        "GROUP BY team_id, session_id, part HAVING max(state) = 'uploaded') "
        "ORDER BY team_id, start_time, session_id",
        {
            "teams": list(team_cutoffs),
            "cutoffs": list(team_cutoffs.values()),
            "default_cutoff": default_cutoff,
            "latest_cutoff": latest_cutoff,
        },
    )


def hot_row_count(team_id: int, session_id: str, upto: int) -> Query:
    """How many raw rows of the session are in no part 0..upto."""
    return Query(
        f"SELECT count() FROM {SNAPSHOT_TABLE} WHERE {SESSION} AND {_NOT_ARCHIVED}",
        {"team_id": team_id, "session_id": session_id, "upto": upto},
    )


def part_chunk_ids(team_id: int, session_id: str, part: int) -> Query:
    """The chunk_ids a part holds (one row, or none if the part is not indexed)."""
    return Query(
        f"SELECT any(chunk_ids) FROM {ARCHIVE_PARTS_TABLE} WHERE {SESSION} "
        "AND part = {part:UInt32}",
        {"team_id": team_id, "session_id": session_id, "part": part},
    )


def archived_row_count(team_id: int, session_id: str) -> Query:
    """How many raw rows of the session have their chunk_id in an indexed part."""
    return Query(
        f"SELECT count() FROM {SNAPSHOT_TABLE} WHERE {SESSION} AND {ARCHIVED}",
        {"team_id": team_id, "session_id": session_id},
    )


def delete_archived_rows(team_id: int, session_id: str) -> Query:
    """Delete the raw rows of the session whose chunk_id is in an indexed part, and only
    those (rows that arrived since the part was written stay)."""
    return Query(
        f"DELETE FROM {SNAPSHOT_TABLE} WHERE {SESSION} AND {ARCHIVED}",
        {"team_id": team_id, "session_id": session_id},
        DELETE_SETTINGS,
    )


def record_part(row: Mapping[str, Any]) -> Insert:
    """A part's row in the parts index (every column of PART_COLUMNS), in its state:
    ``uploaded``, then ``complete`` (which carries the chunk_ids too: it replaces the
    ``uploaded`` row when the table merges)."""
    return _insert(ARCHIVE_PARTS_TABLE, PART_COLUMNS, row)


def record_session(row: Mapping[str, Any]) -> Insert:
    """A session's row in the archive index (every column of SESSION_COLUMNS): the key
    of part 0 and its parts' totals."""
    return _insert(ARCHIVE_TABLE, SESSION_COLUMNS, row)


def mark_summary_archived(
    *, team_id: int, session_id: str, distinct_id: str, start: datetime, end: datetime, key: str
) -> Insert:
    """A marker part of the summary: storage s3 and the key of part 0, neutral for every
    aggregate of the summary view (the counts default to 0, no url)."""
    row = {
        "team_id": team_id,
        "session_id": session_id,
        "window_start": start,
        "part_id": ARCHIVE_PART,
        "version": 1,
        "distinct_id": distinct_id,
        "min_first_timestamp": start,
        "max_last_timestamp": end,
        "first_url": "",
        "first_url_timestamp": NO_URL_TIMESTAMP,
        "storage": "s3",
        "archive_key": key,
    }
    return Insert(SUMMARY_TABLE, tuple(row), [list(row.values())])
