"""The ClickHouse sink: gathers rows for one table into insert blocks and writes them
durably, never dropping one.

The sink follows the add / flush / write(block) shape: rows are added to an *insert
block* (ClickHouse's word for the rows of one INSERT) that the caller flushes (or
detaches and writes in the background) when it wants durability, before acknowledging
the Kafka offsets the rows cover. The block leaves the sink when its write starts,
because a cancelled write leaves its offsets uncommitted, so the rows come again from
Kafka.

Why failed inserts are classified (``is_transient``): an insert can fail because
ClickHouse cannot take it now (unreachable, timeout, too many parts, memory, disk) or
because of the rows themselves (a value out of range for its column, a string where an
integer goes, more partitions in one block than the server allows). The first kind is
retried with capped exponential backoff until it succeeds or the task is cancelled, as
retrying is all that helps. Retrying the second kind forever would stall the partition,
and every team behind it, on one row: instead the block is split in halves, each half
written (with the same retries), recursively, until the rows refused on their own are
found. Those come back to the caller as ``Unwritable`` with the origin it gave them (to
dead-letter the original message); every other row is written. k such rows among N cost
O(k log N) inserts. An error the sink does not recognise counts as transient: a row is
never given up on a guess.
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
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError, DataError

import metrics

log = logging.getLogger(__name__)

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
class InsertBlock:
    """Rows taken out of a sink to be inserted, each with its caller's origin and size."""

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
    """Gathers rows for one table into insert blocks and writes them durably, retrying what
    can succeed and
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

    def detach(self) -> InsertBlock:
        """Take the current block out of the sink (to write it, possibly in the background)."""
        block = InsertBlock(self.rows, self.origins, self.sizes)
        self.rows, self.origins, self.sizes, self.nbytes = [], [], [], 0
        return block

    async def flush(self) -> list[Unwritable]:
        """Write the current block; returns once every row is in ClickHouse or unwritable
        (or raises CancelledError)."""
        block = self.detach()
        return await self.write(block) if block.rows else []

    async def write(self, block: InsertBlock) -> list[Unwritable]:
        """Write `block`: every row that can be written is, the others are returned."""

        async def attempt(start: int, stop: int) -> BaseException | None:
            return await self._write_range(block, start, stop)

        refused = await isolate(len(block.rows), attempt)
        unwritable = [Unwritable(block.rows[i], block.origins[i], describe(e)) for i, e in refused]
        if unwritable:
            metrics.CLICKHOUSE_UNWRITABLE.labels(self.table).inc(len(unwritable))
            log.warning(
                "%d of %d rows are unwritable into %s, e.g. %s",
                len(unwritable),
                len(block.rows),
                self.table,
                unwritable[0].error,
            )
        return unwritable

    async def _write_range(self, block: InsertBlock, start: int, stop: int) -> BaseException | None:
        """Insert rows [start, stop) of `block`, retrying transient failures with backoff
        until it succeeds; the error if ClickHouse refuses these rows for their data."""
        rows = block.rows[start:stop]
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
            self._observe(len(rows), sum(block.sizes[start:stop]), time.perf_counter() - started)
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
        metrics.CLICKHOUSE_BLOCK_ROWS.labels(self.table).observe(count)
        metrics.CLICKHOUSE_BLOCK_BYTES.labels(self.table).observe(nbytes)
        metrics.CLICKHOUSE_INSERT_SECONDS.labels(self.table).observe(seconds)
