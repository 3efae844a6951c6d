"""What the player page reads (api.player_data): the batches known missing of a session
(its gap markers) and the rows written since a moment (a live session followed); and
the newest session, whose share link `run` prints.
Statements only, like sinks.clickhouse.queries, whose Query and conditions they share."""

from __future__ import annotations

from sinks.clickhouse.queries import ARCHIVED, SESSION, Query
from sinks.clickhouse.schema import GAPS_TABLE, SNAPSHOT_TABLE, SUMMARY_VIEW


def session_gaps(team_id: int, session_id: str, limit: int = 1000) -> Query:
    """The session's missing batches in time order: window_id, timestamp_ms, reason and
    batches (how many distinct chunk_ids share that window, moment and reason; each
    chunk_id counts once however many letters it had). A batch written since (a raw row
    of the session, or a chunk_id of an archived part) is no gap any more."""
    return Query(
        "SELECT window_id, toUnixTimestamp64Milli(timestamp) AS timestamp_ms, reason, "
        f"count() AS batches FROM (SELECT window_id, timestamp, reason FROM {GAPS_TABLE} "
        f"FINAL WHERE {SESSION} AND chunk_id NOT IN (SELECT chunk_id FROM {SNAPSHOT_TABLE} "
        f"WHERE {SESSION}) AND NOT {ARCHIVED}) GROUP BY window_id, timestamp_ms, reason "
        "ORDER BY timestamp_ms, window_id, reason LIMIT {limit:UInt32}",
        {"team_id": team_id, "session_id": session_id, "limit": limit},
    )


def session_activity(team_id: int, session_id: str) -> Query:
    """How many raw rows the session has, when the newest was written, and the server's
    clock now (both epoch ms): whether it is live is judged by the server's clock, not
    by the recorded timestamps a client chose."""
    return Query(
        "SELECT count() AS batches, "
        "toUnixTimestamp64Milli(max(inserted_at)) AS newest_ms, "
        "toUnixTimestamp64Milli(now64(3)) AS now_ms "
        f"FROM {SNAPSHOT_TABLE} WHERE {SESSION}",
        {"team_id": team_id, "session_id": session_id},
    )


def live_rows(team_id: int, session_id: str, after_ms: int, rows: int) -> Query:
    """The session's raw rows written after `after_ms` (epoch ms, server clock), oldest
    first: inserted_ms, chunk_id, window_id, snapshot_data. Not deduplicated (FINAL would
    merge the whole session each poll): the caller sends each chunk_id once."""
    return Query(
        "SELECT toUnixTimestamp64Milli(inserted_at) AS inserted_ms, chunk_id, window_id, "
        f"snapshot_data FROM {SNAPSHOT_TABLE} WHERE {SESSION} "
        "AND inserted_at > fromUnixTimestamp64Milli({after:Int64}, 'UTC') "
        "ORDER BY inserted_at, chunk_id LIMIT {rows:UInt32}",
        {"team_id": team_id, "session_id": session_id, "after": after_ms, "rows": rows},
    )


def newest_session(team_ids: list[int]) -> Query:
    """The session that started last among the teams' (team_id, session_id), for `run`."""
    sql = f"SELECT team_id, session_id FROM {SUMMARY_VIEW} WHERE team_id IN {{teams:Array(Int64)}}"
    return Query(f"{sql} ORDER BY start_time DESC, session_id LIMIT 1", {"teams": team_ids})


def session_known(team_id: int, session_id: str) -> Query:
    """One row if the session has a summary or a raw row: a session recorded seconds
    ago has rows before its summary is flushed, and can be shared (and followed)."""
    return Query(
        f"SELECT 1 FROM {SUMMARY_VIEW} WHERE {SESSION} UNION ALL "
        f"SELECT 1 FROM {SNAPSHOT_TABLE} WHERE {SESSION} LIMIT 1",
        {"team_id": team_id, "session_id": session_id},
    )
