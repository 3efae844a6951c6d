"""ClickHouse table schemas: DDL, the session summary view and migrations, run idempotently
by every worker on start, and the client factory for chDB or a server.

Replays are harmless: ``session_recording_events`` is a ReplacingMergeTree whose
sorting key identifies a batch (team, day, session, chunk_id), so a row written twice
collapses into one at merge time, and readers use ``FINAL`` (or the
``session_recording_events_dedup`` view) to see it deduplicated immediately.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.client import Client

SNAPSHOT_TABLE = "session_recording_events"
SNAPSHOT_COLUMNS = (
    "team_id",
    "distinct_id",
    "session_id",
    "window_id",
    "chunk_id",
    "chunk_count",
    "first_timestamp",
    "last_timestamp",
    "has_full_snapshot",
    "event_count",
    "size",
    "snapshot_data",
)

SUMMARY_TABLE = "session_replay_events"
SUMMARY_VIEW = "session_replay_summary"
SUMMARY_COLUMNS = (
    "team_id",
    "session_id",
    "window_start",
    "part_id",
    "version",
    "distinct_id",
    "min_first_timestamp",
    "max_last_timestamp",
    "first_url",
    "first_url_timestamp",
    "all_urls",
    "click_count",
    "keypress_count",
    "mouse_activity_count",
    "console_log_count",
    "console_warn_count",
    "console_error_count",
    "active_segments",
    "size",
    "event_count",
    "message_count",
    "has_full_snapshot",
    "window_ids",
    "retention_days",
)
ACTIVITY_GAP_MS = 5000

# The active-milliseconds fold: join sorted segments closer than the gap, sum durations
# (a segment of one instant counts 1 ms). Same definition as streams.stats.
_ACTIVE_MS = f"""
    if(empty(segs), 0,
       (arrayFold((acc, s) -> if(s.1 - acc.3 > {ACTIVITY_GAP_MS},
                                 (toInt64(acc.1 + greatest(acc.3 - acc.2, 1)), s.1, s.2),
                                 (acc.1, acc.2, greatest(acc.3, s.2))),
                  arrayPopFront(segs), (toInt64(0), segs[1].1, segs[1].2)) AS f).1
       + greatest(f.3 - f.2, 1))
"""

PERFORMANCE_TABLE = "performance_events"
_TIMING = (
    "redirect_start",
    "redirect_end",
    "worker_start",
    "fetch_start",
    "domain_lookup_start",
    "domain_lookup_end",
    "connect_start",
    "secure_connection_start",
    "connect_end",
    "request_start",
    "response_start",
    "response_end",
)
_NAVIGATION = (
    "unload_event_start",
    "unload_event_end",
    "dom_interactive",
    "dom_content_loaded_event_start",
    "dom_content_loaded_event_end",
    "dom_complete",
    "load_event_start",
    "load_event_end",
)
_PERFORMANCE_TYPES = {
    "team_id": "Int64",
    "distinct_id": "String",
    "session_id": "String",
    "window_id": "String",
    "pageview_id": "String",
    "current_url": "String",
    "timestamp": "DateTime64(3, 'UTC')",
    "entry_id": "UInt64",
    "entry_type": "LowCardinality(String)",
    "start_time": "Float64",
    "name": "String",
    "duration": "Float64",
    **dict.fromkeys(_TIMING, "Nullable(Float64)"),
    "transfer_size": "Nullable(Int64)",
    "encoded_body_size": "Nullable(Int64)",
    "decoded_body_size": "Nullable(Int64)",
    "initiator_type": "LowCardinality(Nullable(String))",
    "next_hop_protocol": "LowCardinality(Nullable(String))",
    "render_blocking_status": "LowCardinality(Nullable(String))",
    "response_status": "Nullable(UInt16)",
    **dict.fromkeys(_NAVIGATION, "Nullable(Float64)"),
    "type": "LowCardinality(Nullable(String))",
    "redirect_count": "Nullable(UInt16)",
    "render_time": "Nullable(Float64)",
    "load_time": "Nullable(Float64)",
    "size": "Nullable(Int64)",
    "element": "Nullable(String)",
    "url": "Nullable(String)",
}
PERFORMANCE_COLUMNS = tuple(_PERFORMANCE_TYPES)


def performance_schema(ttl_days: int) -> tuple[str, ...]:
    """One row per PerformanceEntry, replaced by identity, expiring after ttl_days."""
    columns = ",\n        ".join(f"{name} {kind}" for name, kind in _PERFORMANCE_TYPES.items())
    ttl = f"toDateTime(timestamp) + INTERVAL {int(ttl_days)} DAY"
    return (
        f"""
        CREATE TABLE IF NOT EXISTS {PERFORMANCE_TABLE} (
            {columns},
            inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
        )
        ENGINE = ReplacingMergeTree(inserted_at)
        PARTITION BY toYYYYMM(timestamp)
        ORDER BY (team_id, toDate(timestamp), session_id, pageview_id, entry_id)
        TTL {ttl}
        """,
        # a changed REPLAY_PERFORMANCE_TTL_DAYS applies on start, without rewriting parts
        f"ALTER TABLE {PERFORMANCE_TABLE} MODIFY TTL {ttl} "
        "SETTINGS materialize_ttl_after_modify = 0",
    )


ARCHIVE_TABLE = "session_recording_archive"
ARCHIVE_PART = "archive"  # part_id of the summary row that marks a session archived
ARCHIVE_PARTS_TABLE = "session_recording_archive_parts"

SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} (
        team_id Int64,
        distinct_id String,
        session_id String,
        window_id String,
        chunk_id String,
        chunk_count UInt16,
        first_timestamp DateTime64(3, 'UTC'),
        last_timestamp DateTime64(3, 'UTC'),
        has_full_snapshot Bool,
        event_count UInt32,
        size UInt64,
        snapshot_data String CODEC(ZSTD(3)),
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(inserted_at)
    PARTITION BY toYYYYMM(first_timestamp)
    ORDER BY (team_id, toDate(first_timestamp), session_id, chunk_id)
    """,
    f"""
    CREATE OR REPLACE VIEW {SNAPSHOT_TABLE}_dedup AS
    SELECT * FROM {SNAPSHOT_TABLE} FINAL
    """,
    # Partial aggregates, one row per (session, window, part); a part is rewritten with
    # a higher version as it grows, so replacing by version keeps each part's latest.
    f"""
    CREATE TABLE IF NOT EXISTS {SUMMARY_TABLE} (
        team_id Int64,
        session_id String,
        window_start DateTime64(3, 'UTC'),
        part_id String,
        version UInt32,
        distinct_id String,
        min_first_timestamp DateTime64(3, 'UTC'),
        max_last_timestamp DateTime64(3, 'UTC'),
        first_url String,
        first_url_timestamp Int64,
        all_urls Array(String),
        click_count UInt64,
        keypress_count UInt64,
        mouse_activity_count UInt64,
        console_log_count UInt64,
        console_warn_count UInt64,
        console_error_count UInt64,
        active_segments Array(Tuple(Int64, Int64)),
        size UInt64,
        event_count UInt64,
        message_count UInt64,
        has_full_snapshot Bool,
        window_ids Array(String),
        retention_days UInt16,
        storage LowCardinality(String) DEFAULT 'clickhouse',
        archive_key String DEFAULT '',
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (team_id, toDate(window_start), session_id, window_start, part_id)
    """,
    f"ALTER TABLE {SUMMARY_TABLE} ADD COLUMN IF NOT EXISTS "
    "storage LowCardinality(String) DEFAULT 'clickhouse'",
    f"ALTER TABLE {SUMMARY_TABLE} ADD COLUMN IF NOT EXISTS archive_key String DEFAULT ''",
    # Where each archived session lives in S3; the latest state per session wins.
    f"""
    CREATE TABLE IF NOT EXISTS {ARCHIVE_TABLE} (
        team_id Int64,
        session_id String,
        state Enum8('uploaded' = 1, 'complete' = 2),
        key String,
        bytes UInt64,
        etag String,
        sha256 String,
        event_count UInt64,
        start_time DateTime64(3, 'UTC'),
        end_time DateTime64(3, 'UTC'),
        archived_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(archived_at)
    ORDER BY (team_id, session_id)
    """,
    # The objects of each archived session (part 0 and the parts of late rows), with the
    # chunk_ids each holds; a part's row never changes but for its state.
    f"""
    CREATE TABLE IF NOT EXISTS {ARCHIVE_PARTS_TABLE} (
        team_id Int64,
        session_id String,
        part UInt32,
        state Enum8('uploaded' = 1, 'complete' = 2),
        key String,
        bytes UInt64,
        etag String,
        sha256 String,
        event_count UInt64,
        chunk_ids Array(String),
        archived_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(archived_at)
    ORDER BY (team_id, session_id, part)
    """,
    # One plain row per session: the parts (deduplicated by FINAL) merged.
    f"""
    CREATE OR REPLACE VIEW {SUMMARY_VIEW} AS
    SELECT * EXCEPT (segs), {_ACTIVE_MS} AS active_milliseconds
    FROM (
        SELECT
            team_id,
            session_id,
            argMin(distinct_id, (min_first_timestamp, distinct_id)) AS distinct_id,
            min(min_first_timestamp) AS start_time,
            max(max_last_timestamp) AS end_time,
            argMinIf(first_url, (first_url_timestamp, first_url), first_url != '') AS first_url,
            arraySort(groupUniqArrayArray(all_urls)) AS all_urls,
            sum(click_count) AS click_count,
            sum(keypress_count) AS keypress_count,
            sum(mouse_activity_count) AS mouse_activity_count,
            sum(console_log_count) AS console_log_count,
            sum(console_warn_count) AS console_warn_count,
            sum(console_error_count) AS console_error_count,
            arraySort(groupArrayArray(active_segments)) AS segs,
            sum(size) AS size,
            sum(event_count) AS event_count,
            sum(message_count) AS message_count,
            max(has_full_snapshot) AS has_full_snapshot,
            length(groupUniqArrayArray(window_ids)) AS window_count,
            max(retention_days) AS retention_days,
            if(max(storage = 's3'), 's3', 'clickhouse') AS storage,
            max(archive_key) AS archive_key,
            countIf(part_id != '{ARCHIVE_PART}') AS part_count
        FROM {SUMMARY_TABLE} FINAL
        GROUP BY team_id, session_id
    )
    """,
)


def connect(url: str) -> Client:
    """A client for chdb:///path (embedded) or http(s)://user:pass@host:port/db."""
    # clickhouse-connect imports pandas (if installed) on its first insert, ~0.5 s of
    # one core: pay it here, at start, rather than in the first batch's write
    getattr(clickhouse_options, "pd", None)
    if urlsplit(url).scheme == "chdb":
        return clickhouse_connect.get_client(dsn=url)
    return clickhouse_connect.get_client(dsn=url, compress="lz4", connect_timeout=5)


def ensure_schema(client: Client, performance_ttl_days: int = 21) -> None:
    """Idempotent DDL, run by every worker on start."""
    for statement in (*SCHEMA, *performance_schema(performance_ttl_days)):
        client.command(statement)
