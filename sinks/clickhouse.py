"""ClickHouse: the table schemas, a batching sink that never drops rows, and read-only queries.

The sink follows the add / flush / write(batch) shape: rows are added to a batch that
the caller flushes (or detaches and writes in the background) when it wants durability,
before acknowledging the Kafka offsets the rows cover. The batch leaves the sink when its
write starts, because a cancelled write leaves its offsets uncommitted, so the rows come
again from Kafka.

Why failed inserts are classified (``is_transient``): an insert can fail because
ClickHouse cannot take it now (unreachable, timeout, too many parts, memory, disk) or
because of the rows themselves (a value out of range for its column, a string where an
integer goes, more partitions in one block than the server allows). The first kind is
retried with capped exponential backoff until it succeeds or the task is cancelled, as
retrying is all that helps. Retrying the second kind forever would stall the partition,
and every team behind it, on one row: instead the batch is split in halves, each half
written (with the same retries), recursively, until the rows refused on their own are
found. Those come back to the caller as ``Unwritable`` with the origin it gave them (to
dead-letter the original message); every other row is written. k such rows among N cost
O(k log N) inserts. An error the sink does not recognise counts as transient: a row is
never given up on a guess.

Replays are harmless: ``session_recording_events`` is a ReplacingMergeTree whose
sorting key identifies a batch (team, day, session, chunk_id), so a row written twice
collapses into one at merge time, and readers use ``FINAL`` (or the
``session_recording_events_dedup`` view) to see it deduplicated immediately.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
import struct
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver import options as clickhouse_options
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError

import metrics

log = logging.getLogger(__name__)

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


SUMMARY_FIELDS = (
    "team_id, session_id, distinct_id, start_time, end_time, first_url, all_urls, "
    "click_count, keypress_count, mouse_activity_count, console_log_count, console_warn_count, "
    "console_error_count, active_milliseconds, size, event_count, message_count, "
    "has_full_snapshot, window_count, retention_days, storage"
)


def _ms_literal(moment: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(moment.timestamp() * 1000)}, 'UTC')"


def sessions_sql(
    team_id: int, since: datetime | None = None, until: datetime | None = None, limit: int = 100
) -> str:
    """Newest sessions of a team that started in [since, until). Values are typed, not text."""
    where = [f"team_id = {int(team_id)}"]
    if since is not None:
        where.append(f"start_time >= {_ms_literal(since)}")
    if until is not None:
        where.append(f"start_time < {_ms_literal(until)}")
    return (
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} WHERE {' AND '.join(where)} "
        f"ORDER BY start_time DESC, session_id LIMIT {int(limit)}"
    )


def session_sql(team_id: int, session_id: str) -> str:
    """One session's summary; session_id must already be a validated id (no quotes)."""
    assert "'" not in session_id and "\\" not in session_id
    return (
        f"SELECT {SUMMARY_FIELDS} FROM {SUMMARY_VIEW} "
        f"WHERE team_id = {int(team_id)} AND session_id = '{session_id}'"
    )


def network_sql(team_id: int, session_id: str) -> str:
    """A session's performance entries in time order; session_id must be a validated id."""
    assert "'" not in session_id and "\\" not in session_id
    columns = ", ".join(c for c in PERFORMANCE_COLUMNS if c not in ("team_id", "session_id"))
    return (
        f"SELECT {columns} FROM {PERFORMANCE_TABLE} FINAL "
        f"WHERE team_id = {int(team_id)} AND session_id = '{session_id}' "
        "ORDER BY timestamp, start_time, entry_id"
    )


# Server error codes caused by the inserted rows themselves: the same rows fail the same
# way however often they are sent. Names as in ClickHouse's ErrorCodes.cpp.
_ROW_ERROR_CODES = frozenset(
    {
        6,  # CANNOT_PARSE_TEXT
        19,  # SIZE_OF_FIXED_STRING_DOESNT_MATCH
        25,  # CANNOT_PARSE_ESCAPE_SEQUENCE
        26,  # CANNOT_PARSE_QUOTED_STRING
        27,  # CANNOT_PARSE_INPUT_ASSERTION_FAILED
        38,  # CANNOT_PARSE_DATE
        41,  # CANNOT_PARSE_DATETIME
        53,  # TYPE_MISMATCH
        69,  # ARGUMENT_OUT_OF_BOUND
        70,  # CANNOT_CONVERT_TYPE
        72,  # CANNOT_PARSE_NUMBER
        117,  # INCORRECT_DATA
        128,  # TOO_LARGE_ARRAY_SIZE
        131,  # TOO_LARGE_STRING_SIZE
        248,  # INVALID_PARTITION_VALUE
        321,  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
        349,  # CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN
        407,  # DECIMAL_OVERFLOW
        469,  # VIOLATED_CONSTRAINT
        565,  # TOO_MANY_PARTITIONS
    }
)
# TOO_MANY_PARTS is both "merges are behind" (transient) and, from MergeTree, "Too many
# partitions for single INSERT block (more than max_partitions_per_insert_block)", which
# a smaller block fixes: only its message tells them apart.
_TOO_MANY_PARTS = 252
_PARTITIONS_PER_BLOCK = "partitions for single insert block"
_SERVER_CODE = re.compile(r"\bCode:\s*(\d+)", re.I)
# What clickhouse-connect's column serialisers raise for a value its column cannot hold
# (an int out of range, a str where an int goes, a row of the wrong shape), before
# anything is sent. Its DataError (no server code) wraps most of them.
_SERIALISER_ERRORS = (
    DataError,
    OverflowError,
    struct.error,
    TypeError,
    ValueError,
    AttributeError,
    LookupError,
)


class ClickHouseUnavailable(ConnectionError):
    """No client could be made (server unreachable, bad address): never the rows' fault."""


def error_code(exc: BaseException) -> int | None:
    """The ClickHouse server error code of `exc`, if it came from a server: its ``code``
    attribute, else the first ``Code: NNN`` of its message (chDB and HTTP both start
    their text with it). Client-side errors are not read: their text may quote input."""
    if not isinstance(exc, ClickHouseError):
        return None
    code = getattr(exc, "code", None)
    if isinstance(code, int):
        return code
    match = _SERVER_CODE.search(str(exc))
    return int(match.group(1)) if match else None


def is_transient(exc: BaseException) -> bool:
    """Whether retrying the same insert can succeed. False only for errors the rows cause
    (see _ROW_ERROR_CODES and _SERIALISER_ERRORS); connection, timeouts (159, 209),
    network (210), too many parts (252), memory (241), disk (243, 75, a filesystem
    STD_EXCEPTION 1001), a read-only table (242) and anything unknown are transient."""
    code = error_code(exc)
    if code is not None:
        if code == _TOO_MANY_PARTS:
            return _PARTITIONS_PER_BLOCK not in str(exc).lower()
        return code not in _ROW_ERROR_CODES
    if isinstance(exc, OSError):  # connection refused/reset, timeouts, ClickHouseUnavailable
        return True
    return not isinstance(exc, _SERIALISER_ERRORS)


def describe(exc: BaseException, limit: int = 300) -> str:
    """A short, one-line account of an insert error: type, code, first line, cause."""
    code = error_code(exc)
    text = (str(exc).strip().splitlines() or [""])[0]
    cause = exc.__cause__
    if cause is not None and str(cause).strip():
        text = f"{text} ({str(cause).strip().splitlines()[0]})"
    head = type(exc).__name__ + (f" code {code}" if code is not None else "")
    return f"{head}: {text}"[:limit]


# Write rows [start, stop): None once written, or the permanent error that refused them.
Attempt = Callable[[int, int], Awaitable[BaseException | None]]


async def isolate(count: int, attempt: Attempt) -> list[tuple[int, BaseException]]:
    """Write rows [0, count) through `attempt`, splitting each refused range in halves
    until the rows refused on their own are found; returns them, in order, with their
    errors. A range that was written is never attempted again, so k such rows among
    `count` cost at most about 2k log2(count) attempts."""
    refused: list[tuple[int, BaseException]] = []

    async def write(start: int, stop: int) -> None:
        error = await attempt(start, stop)
        if error is None:
            return
        if stop - start == 1:
            refused.append((start, error))
            return
        middle = (start + stop) // 2
        await write(start, middle)
        await write(middle, stop)

    if count:
        await write(0, count)
    return refused


Row = Sequence[Any]


@dataclass(frozen=True)
class SinkBatch:
    """Rows taken out of a sink to be written, each with its caller's origin and size."""

    rows: list[Row]
    origins: list[Any]
    sizes: list[int]

    @property
    def nbytes(self) -> int:
        return sum(self.sizes)


@dataclass(frozen=True)
class Unwritable:
    """A row ClickHouse refused on its own for its data: no retry can write it. `error`
    comes from inserting this row alone, so it names nothing of any other row."""

    row: Row
    origin: Any
    error: str


@dataclass
class ClickHouseSink:
    """Batches rows for one table and writes them durably, retrying what can succeed and
    handing back, as Unwritable, the rows no retry can write."""

    client_factory: Callable[[], Client]
    table: str
    columns: Sequence[str]
    max_rows: int
    max_bytes: int
    retry_max_seconds: float = 30.0
    rows: list[Row] = field(default_factory=list)
    origins: list[Any] = field(default_factory=list)
    sizes: list[int] = field(default_factory=list)
    nbytes: int = 0
    _client: Client | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)  # one client, one call at a time

    def add(self, row: Row, nbytes: int, origin: Any = None) -> None:
        """Add a row; `origin` (opaque, e.g. the source message) comes back if it is unwritable."""
        self.rows.append(row)
        self.origins.append(origin)
        self.sizes.append(nbytes)
        self.nbytes += nbytes

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.max_rows or self.nbytes >= self.max_bytes

    def detach(self) -> SinkBatch:
        """Take the current batch out of the sink (to write it, possibly in the background)."""
        batch = SinkBatch(self.rows, self.origins, self.sizes)
        self.rows, self.origins, self.sizes, self.nbytes = [], [], [], 0
        return batch

    async def flush(self) -> list[Unwritable]:
        """Write the batch; returns once every row is in ClickHouse or unwritable (or
        raises CancelledError)."""
        batch = self.detach()
        return await self.write(batch) if batch.rows else []

    async def write(self, batch: SinkBatch) -> list[Unwritable]:
        """Write `batch`: every row that can be written is, the others are returned."""

        async def attempt(start: int, stop: int) -> BaseException | None:
            return await self._write_range(batch, start, stop)

        refused = await isolate(len(batch.rows), attempt)
        unwritable = [Unwritable(batch.rows[i], batch.origins[i], describe(e)) for i, e in refused]
        if unwritable:
            metrics.CLICKHOUSE_UNWRITABLE.labels(self.table).inc(len(unwritable))
            log.warning(
                "%d of %d rows are unwritable into %s, e.g. %s",
                len(unwritable),
                len(batch.rows),
                self.table,
                unwritable[0].error,
            )
        return unwritable

    async def _write_range(self, batch: SinkBatch, start: int, stop: int) -> BaseException | None:
        """Insert rows [start, stop) of `batch`, retrying transient failures with backoff
        until it succeeds; the error if ClickHouse refuses these rows for their data."""
        rows = batch.rows[start:stop]
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                async with self._lock:
                    await asyncio.to_thread(self._insert, rows)
            except Exception as exc:
                if not is_transient(exc):
                    metrics.CLICKHOUSE_REFUSED.labels(self.table).inc()
                    log.debug("%s refused %d rows: %s", self.table, len(rows), describe(exc))
                    return exc
                attempt += 1
                await self._back_off(attempt, len(rows), exc)
                continue
            self._observe(len(rows), sum(batch.sizes[start:stop]), time.perf_counter() - started)
            return None

    async def _back_off(self, attempt: int, count: int, exc: Exception) -> None:
        metrics.CLICKHOUSE_FAILURES.labels(self.table).inc()
        delay = min(self.retry_max_seconds, 0.1 * 2 ** min(attempt, 16))
        delay *= random.uniform(0.5, 1.0)
        log.warning(
            "insert of %d rows into %s failed (attempt %d, retry in %.1fs): %s",
            count,
            self.table,
            attempt,
            delay,
            describe(exc),
        )
        metrics.CLICKHOUSE_RETRIES.labels(self.table).inc()
        await asyncio.sleep(delay)

    def _insert(self, rows: list[Row]) -> None:
        if self._client is None:
            try:
                self._client = self.client_factory()
            except Exception as exc:
                raise ClickHouseUnavailable(describe(exc)) from exc
        self._client.insert(self.table, rows, column_names=list(self.columns))

    def _observe(self, count: int, nbytes: int, seconds: float) -> None:
        metrics.CLICKHOUSE_ROWS.labels(self.table).inc(count)
        metrics.CLICKHOUSE_BYTES.labels(self.table).inc(nbytes)
        metrics.CLICKHOUSE_BATCH_ROWS.labels(self.table).observe(count)
        metrics.CLICKHOUSE_BATCH_BYTES.labels(self.table).observe(nbytes)
        metrics.CLICKHOUSE_INSERT_SECONDS.labels(self.table).observe(seconds)
