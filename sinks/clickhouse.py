"""ClickHouse: the table schemas, a batching sink that never drops rows, and read-only queries.

The sink follows the add / flush / write(batch) shape: rows are added to a batch that
the caller flushes when it wants durability (before acknowledging the Kafka offsets the
rows cover). A failed insert is retried with capped exponential backoff until it
succeeds or the task is cancelled; the batch is cleared in ``finally`` because a
cancelled flush leaves its offsets uncommitted, so the rows come again from Kafka.

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
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import clickhouse_connect
from clickhouse_connect.driver.client import Client

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
    CREATE VIEW IF NOT EXISTS {SNAPSHOT_TABLE}_dedup AS
    SELECT * FROM {SNAPSHOT_TABLE} FINAL
    """,
)


def connect(url: str) -> Client:
    """A client for chdb:///path (embedded) or http(s)://user:pass@host:port/db."""
    if urlsplit(url).scheme == "chdb":
        return clickhouse_connect.get_client(dsn=url)
    return clickhouse_connect.get_client(dsn=url, compress="lz4", connect_timeout=5)


def ensure_schema(client: Client) -> None:
    """Idempotent DDL, run by every worker on start."""
    for statement in SCHEMA:
        client.command(statement)


_READ_ONLY_START = re.compile(r"\s*(SELECT|WITH|SHOW|DESCRIBE|DESC|EXPLAIN|EXISTS)\b", re.I)


class ReadOnlyViolation(ValueError):
    """The statement is not a read-only query."""


def query_read_only(client: Client, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one read-only statement: refused unless it reads, and run with readonly=1."""
    if not _READ_ONLY_START.match(sql) or ";" in sql.strip().rstrip(";"):
        raise ReadOnlyViolation("only one SELECT/WITH/SHOW/DESCRIBE/EXPLAIN statement is allowed")
    result = client.query(sql.strip().rstrip(";"), settings={"readonly": 1})
    return list(result.column_names), [tuple(row) for row in result.result_rows]


@dataclass
class ClickHouseSink:
    """Batches rows for one table and writes them durably, retrying with backoff."""

    client_factory: Callable[[], Client]
    table: str
    columns: Sequence[str]
    max_rows: int
    max_bytes: int
    retry_max_seconds: float = 30.0
    rows: list[Sequence[Any]] = field(default_factory=list)
    nbytes: int = 0
    _client: Client | None = None

    def add(self, row: Sequence[Any], nbytes: int) -> None:
        self.rows.append(row)
        self.nbytes += nbytes

    @property
    def full(self) -> bool:
        return len(self.rows) >= self.max_rows or self.nbytes >= self.max_bytes

    async def flush(self) -> None:
        """Write the batch; returns only once it is in ClickHouse (or raises Cancelled)."""
        if not self.rows:
            return
        rows, nbytes = self.rows, self.nbytes
        try:
            await self.write(rows, nbytes)
        finally:
            self.rows, self.nbytes = [], 0

    async def write(self, rows: list[Sequence[Any]], nbytes: int) -> None:
        attempt = 0
        while True:
            started = time.perf_counter()
            try:
                await asyncio.to_thread(self._insert, rows)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                attempt += 1
                metrics.CLICKHOUSE_FAILURES.labels(self.table).inc()
                delay = min(self.retry_max_seconds, 0.1 * 2 ** min(attempt, 16))
                delay *= random.uniform(0.5, 1.0)
                log.warning(
                    "insert of %d rows into %s failed (attempt %d, retry in %.1fs): %s",
                    len(rows),
                    self.table,
                    attempt,
                    delay,
                    str(exc).splitlines()[0][:300],
                )
                await asyncio.sleep(delay)
                continue
            self._observe(len(rows), nbytes, time.perf_counter() - started)
            return

    def _insert(self, rows: list[Sequence[Any]]) -> None:
        if self._client is None:
            self._client = self.client_factory()
        self._client.insert(self.table, rows, column_names=list(self.columns))

    def _observe(self, count: int, nbytes: int, seconds: float) -> None:
        metrics.CLICKHOUSE_ROWS.labels(self.table).inc(count)
        metrics.CLICKHOUSE_BYTES.labels(self.table).inc(nbytes)
        metrics.CLICKHOUSE_BATCH_ROWS.labels(self.table).observe(count)
        metrics.CLICKHOUSE_BATCH_BYTES.labels(self.table).observe(nbytes)
        metrics.CLICKHOUSE_INSERT_SECONDS.labels(self.table).observe(seconds)
