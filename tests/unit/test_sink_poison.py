"""Poison isolation at the ClickHouse sink: which errors are retried, and the splitting
that finds the rows no retry can write. The splitting is a property over any insert block
and any set of poison rows; its real counterpart on chDB is in tests/e2e/test_clickhouse.py."""

from __future__ import annotations

import asyncio
import math
import socket
import struct
from collections.abc import Callable

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError
from hypothesis import given, settings
from hypothesis import strategies as st

import metrics
from replay_ingest.localstack import free_port
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect
from sinks.clickhouse.sink import (
    ClickHouseSink,
    ClickHouseUnavailable,
    describe,
    error_code,
    is_transient,
    isolate,
)


def server_error(code: int, text: str, *, with_attribute: bool = True) -> DatabaseError:
    """What chDB raises (code attribute set) or an HTTP server error without the header."""
    message = f"Code: {code}. DB::Exception: {text}. (NAME) (version 25.8.1.1)"
    if with_attribute:
        return DatabaseError(message, code=code)
    return DatabaseError(f"Received ClickHouse exception, server response: {message}")


TRANSIENT_CODES = {
    159: "Timeout exceeded: elapsed 30 seconds",  # TIMEOUT_EXCEEDED
    209: "Timeout exceeded while reading from socket",  # SOCKET_TIMEOUT
    210: "Connection reset by peer, while writing to socket",  # NETWORK_ERROR
    241: "Memory limit (total) exceeded",  # MEMORY_LIMIT_EXCEEDED
    242: "Table is in readonly mode",  # TABLE_IS_READ_ONLY
    243: "Cannot reserve 1.00 MiB, not enough space",  # NOT_ENOUGH_SPACE
    75: "Cannot write to file descriptor",  # CANNOT_WRITE_TO_FILE_DESCRIPTOR
    252: "Too many parts (3000). Merges are processing significantly slower than inserts",
    1001: "filesystem error: in create_directories: Operation not permitted",  # chattr +i
    60: "Table default.session_recording_events does not exist",  # schema: an operator's fix
    999_999: "a code this sink has never heard of",
}
PERMANENT_CODES = {
    53: "Type mismatch in IN or VALUES section",  # TYPE_MISMATCH
    69: "Argument out of bound",  # ARGUMENT_OUT_OF_BOUND
    70: "Cannot convert: String to UInt16",  # CANNOT_CONVERT_TYPE
    321: "Value 70000 is out of range of UInt16",  # VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE
    252: "Too many partitions for single INSERT block (more than 100). The limit is "
    "controlled by 'max_partitions_per_insert_block' setting",
    565: "Too many partitions",  # TOO_MANY_PARTITIONS
}


@pytest.mark.parametrize("with_attribute", [True, False])
@pytest.mark.parametrize(("code", "text"), TRANSIENT_CODES.items())
def test_server_errors_that_retrying_can_fix_are_transient(
    code: int, text: str, with_attribute: bool
) -> None:
    exc = server_error(code, text, with_attribute=with_attribute)
    assert error_code(exc) == code
    assert is_transient(exc)


@pytest.mark.parametrize("with_attribute", [True, False])
@pytest.mark.parametrize(("code", "text"), PERMANENT_CODES.items())
def test_server_errors_the_rows_cause_are_permanent(
    code: int, text: str, with_attribute: bool
) -> None:
    exc = server_error(code, text, with_attribute=with_attribute)
    assert error_code(exc) == code
    assert not is_transient(exc)


def raised(call: Callable[[], object]) -> Exception:
    """The exception `call` really raises."""
    try:
        call()
    except Exception as exc:
        return exc
    raise AssertionError(f"{call} raised nothing")


@pytest.mark.parametrize(
    "exc",
    [
        DataError("Unable to create native array for column `chunk_count`: error"),
        DataError("Invalid None value in non-Nullable column, column name: `snapshot_data`"),
        OverflowError("int too big to convert"),
        raised(lambda: struct.pack("<H", 70_000)),  # UInt16
        raised(lambda: struct.pack("<q", 2**70)),  # Int64
        TypeError("'NoneType' object is not subscriptable"),
        AttributeError("'bytes' object has no attribute 'encode'"),
        IndexError("tuple index out of range"),
        raised(lambda: "\ud800".encode()),  # a lone surrogate: UnicodeEncodeError
        # a client-side error quoting input is not read for a server code
        ValueError("invalid literal for int() with base 10: 'Code: 241.'"),
    ],
)
def test_client_side_serialisation_errors_are_permanent(exc: BaseException) -> None:
    assert error_code(exc) is None
    assert not is_transient(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionRefusedError(111, "Connection refused"),
        ConnectionResetError(104, "Connection reset by peer"),
        TimeoutError("timed out"),
        socket.gaierror(-2, "Name or service not known"),
        ClickHouseUnavailable("Error HTTPConnectionPool(host='127.0.0.1'): Connection refused"),
        OperationalError("Error HTTPConnectionPool(host='127.0.0.1', port=1): Max retries"),
        DatabaseError("HTTP driver received HTTP status 503"),
        RuntimeError("something nobody planned for"),
    ],
)
def test_network_and_unknown_errors_are_transient(exc: BaseException) -> None:
    assert is_transient(exc)


def test_describe_is_one_short_line_with_code_and_cause() -> None:
    exc = server_error(53, "Type mismatch\n" + "x" * 1000)
    text = describe(exc)
    assert "\n" not in text and len(text) <= 300
    assert text.startswith("DatabaseError code 53: Code: 53. DB::Exception: Type mismatch")
    wrapped = DataError("Unable to create native array for column `chunk_count`")
    wrapped.__cause__ = raised(lambda: struct.pack("<H", 70_000))
    assert describe(wrapped) == (
        "DataError: Unable to create native array for column `chunk_count` "
        "(ushort format requires 0 <= number <= 65535)"
    )


@settings(max_examples=400, deadline=None)
@given(
    st.integers(min_value=0, max_value=300).flatmap(
        lambda n: st.tuples(st.just(n), st.sets(st.integers(0, max(n - 1, 0)), max_size=n))
    )
)
def test_isolate_writes_every_good_row_once_and_returns_exactly_the_poison(
    case: tuple[int, set[int]],
) -> None:
    """Any block, any poison positions: written and unwritable partition the block, the
    unwritable are the poison rows, nothing is written twice, in O(k log N) attempts."""
    count, poison = case
    written: list[int] = []
    attempts = 0

    async def attempt(start: int, stop: int) -> BaseException | None:
        nonlocal attempts
        attempts += 1
        assert 0 <= start < stop <= count
        bad = sorted(poison.intersection(range(start, stop)))
        if bad:
            return ValueError(f"row {bad[0]} out of range")
        written.extend(range(start, stop))
        return None

    refused = asyncio.run(isolate(count, attempt))
    assert [i for i, _ in refused] == sorted(poison)
    assert all(str(e) == f"row {i} out of range" for i, e in refused)
    assert len(written) == len(set(written))  # no row written twice
    assert set(written).isdisjoint(poison)
    assert set(written) | poison == set(range(count))
    bound = 1 + 2 * len(poison) * max(1, math.ceil(math.log2(max(count, 1))))
    assert attempts <= (bound if count else 0)


def test_an_unreachable_server_is_retried_never_unwritable() -> None:
    """A closed port for an HTTP URL: the write keeps retrying (until cancelled) and
    hands back no row."""
    url = f"http://127.0.0.1:{free_port()}/default"
    target = ClickHouseSink(
        lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, 10, 10_000, retry_max_seconds=0.05
    )
    target.add((1, "d", "s", "w", "c", 1, 0, 0, True, 1, 1, "[]"), 1, origin="m-1")
    failures = metrics.CLICKHOUSE_FAILURES.labels(SNAPSHOT_TABLE)
    unwritable = metrics.CLICKHOUSE_UNWRITABLE.labels(SNAPSHOT_TABLE)
    refused = metrics.CLICKHOUSE_REFUSED.labels(SNAPSHOT_TABLE)
    before = (failures._value.get(), unwritable._value.get(), refused._value.get())

    async def scenario() -> None:
        flushing = asyncio.create_task(target.flush())
        async with asyncio.timeout(30):
            while failures._value.get() < before[0] + 3:
                assert not flushing.done()
                await asyncio.sleep(0.02)
        flushing.cancel()
        with pytest.raises(asyncio.CancelledError):
            await flushing

    asyncio.run(scenario())
    assert (unwritable._value.get(), refused._value.get()) == before[1:]
