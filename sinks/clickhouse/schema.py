"""ClickHouse table schemas: DDL, the session summary view and migrations, run idempotently
by every worker on start, and the client factory for chDB or a server.

Replays are harmless: ``session_recording_events`` is a ReplacingMergeTree whose
sorting key identifies a batch (team, day, session, chunk_id), so a row written twice
collapses into one at merge time, and readers use ``FINAL`` (or the
``session_recording_events_dedup`` view) to see it deduplicated immediately.
"""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlsplit

import clickhouse_connect
import msgspec
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.client import Client

from sinks.clickhouse.summary import FIGURES, HIDDEN, VIEW_FIGURES, annotations_of, view_expression

SNAPSHOT_TABLE = "session_recording_events"


class SnapshotRow(msgspec.Struct, frozen=True):
    """One row of `session_recording_events` (one per chunk_id): the fields are its
    columns, annotated with their ClickHouse types, in table order."""

    team_id: Annotated[int, "Int64"]
    distinct_id: Annotated[str, "String"]
    session_id: Annotated[str, "String"]
    window_id: Annotated[str, "String"]
    chunk_id: Annotated[str, "String"]
    chunk_count: Annotated[int, "UInt16"]
    first_timestamp: Annotated[int, "DateTime64(3, 'UTC')"]
    last_timestamp: Annotated[int, "DateTime64(3, 'UTC')"]
    has_full_snapshot: Annotated[bool, "Bool"]
    event_count: Annotated[int, "UInt32"]
    size: Annotated[int, "UInt64"]
    snapshot_data: Annotated[str, "String CODEC(ZSTD(3))"]


SNAPSHOT_TYPES: dict[str, str] = annotations_of(SnapshotRow)
SNAPSHOT_COLUMNS = tuple(SNAPSHOT_TYPES)

SUMMARY_TABLE = "session_replay_events"
SUMMARY_VIEW = "session_replay_summary"
# A part's row: which part of which session window, its version (batches covered),
# then the figures declared in sinks.clickhouse.summary.
SUMMARY_KEY_TYPES = {
    "team_id": "Int64",
    "session_id": "String",
    "window_start": "DateTime64(3, 'UTC')",
    "part_id": "String",
    "version": "UInt32",
}
FIGURES_TYPES = {name: column.type for name, column in FIGURES.items()}
SUMMARY_TYPES = SUMMARY_KEY_TYPES | FIGURES_TYPES
SUMMARY_COLUMNS = tuple(SUMMARY_TYPES)
# What the read API returns of a session: the view's figures, in declaration order.
SESSION_FIELDS = ("team_id", "session_id", *VIEW_FIGURES, "storage")
# Columns only the retention job writes (on the row that marks a session archived).
ARCHIVE_MARK_TYPES = {
    "storage": "LowCardinality(String) DEFAULT 'clickhouse'",
    "archive_key": "String DEFAULT ''",
}

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


# The batches of a session known missing (dead-lettered, expired chunk sets), one row
# per (team, session, chunk_id) however many letters a batch had (the pieces of an
# expired set, a letter replayed and refused again): the player's gap markers.
GAPS_TABLE = "session_recording_gaps"
GAPS_TYPES = {
    "team_id": "Int64",
    "session_id": "String",
    "window_id": "String",
    "chunk_id": "String",
    "timestamp": "DateTime64(3, 'UTC')",
    "reason": "LowCardinality(String)",
    "stage": "LowCardinality(String)",
    "source_topic": "LowCardinality(String)",
    "source_partition": "Int32",
    "source_offset": "Int64",
}
GAPS_COLUMNS = tuple(GAPS_TYPES)

# Erasure requests and their proof, one logical row per request (the latest version
# wins): what was asked (kind: session, person or before), its state, and once done
# what was removed per tier and the S3 keys deleted. Also the tombstones workers load.
DELETIONS_TABLE = "session_recording_deletions"

ARCHIVE_TABLE = "session_recording_archive"
ARCHIVE_PART = "archive"  # part_id of the summary row that marks a session archived
ARCHIVE_PARTS_TABLE = "session_recording_archive_parts"


def _columns_ddl(types: dict[str, str]) -> str:
    return ",\n        ".join(f"{name} {kind}" for name, kind in types.items())


_VIEW_FIGURES = ",\n        ".join(
    view_expression(n, c) for n, c in FIGURES.items() if c.out != HIDDEN
)

SCHEMA = (
    f"""
    CREATE TABLE IF NOT EXISTS {SNAPSHOT_TABLE} (
        {_columns_ddl(SNAPSHOT_TYPES)},
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
        {_columns_ddl(SUMMARY_TYPES | ARCHIVE_MARK_TYPES)},
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(version)
    PARTITION BY toYYYYMM(window_start)
    ORDER BY (team_id, toDate(window_start), session_id, window_start, part_id)
    """,
    # migrations: a table made before a column was declared gains it (empty for old rows)
    *(
        f"ALTER TABLE {SUMMARY_TABLE} ADD COLUMN IF NOT EXISTS {name} {kind}"
        for name, kind in (FIGURES_TYPES | ARCHIVE_MARK_TYPES).items()
    ),
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
    # A batch's latest letter wins; small (one row per missing batch): one partition.
    f"""
    CREATE TABLE IF NOT EXISTS {GAPS_TABLE} (
        {_columns_ddl(GAPS_TYPES)},
        inserted_at DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(inserted_at)
    ORDER BY (team_id, session_id, chunk_id)
    """,
    f"""
    CREATE TABLE IF NOT EXISTS {DELETIONS_TABLE} (
        deletion_id String,
        team_id Int64,
        kind LowCardinality(String),
        session_ids Array(String),
        distinct_id String,
        before DateTime64(3, 'UTC'),
        requested_by LowCardinality(String),
        requested_at DateTime64(3, 'UTC'),
        state Enum8('requested' = 1, 'running' = 2, 'done' = 3),
        sessions Array(String),
        removed Map(String, UInt64),
        s3_keys Array(String),
        completed_at DateTime64(3, 'UTC'),
        version DateTime64(3, 'UTC') DEFAULT now64(3)
    )
    ENGINE = ReplacingMergeTree(version)
    ORDER BY (team_id, deletion_id)
    """,
    # One plain row per session: the parts (deduplicated by FINAL) merged, each figure
    # by its declared rule (sinks.clickhouse.summary).
    f"""
    CREATE OR REPLACE VIEW {SUMMARY_VIEW} AS
    SELECT
        team_id,
        session_id,
        {_VIEW_FIGURES},
        if(max(storage = 's3'), 's3', 'clickhouse') AS storage,
        max(archive_key) AS archive_key,
        countIf(part_id != '{ARCHIVE_PART}') AS part_count
    FROM {SUMMARY_TABLE} FINAL
    GROUP BY team_id, session_id
    """,
)


def connect(url: str) -> Client:
    """A client for chdb:///path (embedded) or http(s)://user:pass@host:port/db."""
    # clickhouse-connect imports pandas (if installed) on its first insert, ~0.5 s of
    # one core: pay it here, at start, rather than in the first insert
    getattr(clickhouse_options, "pd", None)
    if urlsplit(url).scheme == "chdb":
        return clickhouse_connect.get_client(dsn=url)
    return clickhouse_connect.get_client(dsn=url, compress="lz4", connect_timeout=5)


def ensure_schema(client: Client, performance_ttl_days: int = 21) -> None:
    """Idempotent DDL, run by every worker on start."""
    for statement in (*SCHEMA, *performance_schema(performance_ttl_days)):
        client.command(statement)
