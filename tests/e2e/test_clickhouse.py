"""The ClickHouse sink and read-only queries, on a real chDB: retries of what can
succeed, poison rows isolated in few inserts, the rest written."""

from __future__ import annotations

import asyncio
import math
from pathlib import Path
from typing import Any

import pytest

import metrics
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect
from sinks.clickhouse.sink import ClickHouseSink, Unwritable
from sinks.sql_guard import ReadOnlyViolation, query_read_only
from tests.builders import TS, snapshot_row
from tests.checks import rows_in
from tests.stack import DeadDisk

# Rows no retry can write, each refused by clickhouse-connect's serialisers or chDB.
POISON = {
    "chunk_count 70000 into UInt16": {"chunk_count": 70_000},
    "a string into Int64": {"team_id": "1; DROP TABLE x"},
    "team_id past Int64": {"team_id": 2**70},
    "negative size into UInt64": {"size": -5},
    "a float timestamp into DateTime64": {"first_timestamp": 1.5e12},
    "NULL into a String": {"snapshot_data": None},
    "a lone surrogate in a String": {"distinct_id": "\ud800"},
}


class CountingClient:
    """The real client, counting the inserts it is asked for (not a mock: it inserts)."""

    def __init__(self, client: Any, counter: list[int]) -> None:
        self.client, self.counter = client, counter

    def insert(self, *args: Any, **kwargs: Any) -> Any:
        self.counter[0] += 1
        return self.client.insert(*args, **kwargs)


def flushed(target: ClickHouseSink) -> list[Unwritable]:
    """Flush, failing (not hanging) if a row is retried instead of isolated."""
    return asyncio.run(asyncio.wait_for(target.flush(), 60))


def counting_sink(url: str, counter: list[int]) -> ClickHouseSink:
    return ClickHouseSink(
        lambda: CountingClient(connect(url), counter),  # type: ignore[arg-type,return-value]
        SNAPSHOT_TABLE,
        SNAPSHOT_COLUMNS,
        max_rows=100_000,
        max_bytes=10**9,
        retry_max_seconds=0.2,
    )


def sink(url: str, **kwargs: object) -> ClickHouseSink:
    return ClickHouseSink(
        lambda: connect(url),
        SNAPSHOT_TABLE,
        SNAPSHOT_COLUMNS,
        max_rows=kwargs.pop("max_rows", 3),
        max_bytes=kwargs.pop("max_bytes", 100),  # type: ignore[arg-type]
        retry_max_seconds=0.2,
    )


def test_blocks_are_bounded_and_replays_collapse(chdb_url: str) -> None:
    target = sink(chdb_url)
    target.add(snapshot_row("b-1"), 10)
    target.add(snapshot_row("b-2"), 10)
    assert not target.full
    target.add(snapshot_row("b-3"), 10)
    assert target.full  # rows bound
    assert asyncio.run(target.flush()) == []
    assert target.rows == [] and target.nbytes == 0
    target.add(snapshot_row("b-1", size=200), 200)
    assert target.full  # bytes bound
    assert asyncio.run(target.flush()) == []
    assert rows_in(chdb_url, "b-") == 3  # b-1 written twice, read once


def test_poison_rows_are_isolated_and_every_other_row_is_written(chdb_url: str) -> None:
    """A few rows no retry can write, among many good ones: exactly the good rows land,
    exactly the poison rows come back with their origins, in O(k log N) inserts."""
    inserts = [0]
    target = counting_sink(chdb_url, inserts)
    good, k = 2000, len(POISON)
    positions = {7 + i * (good // k) for i in range(k)}  # spread over the block
    poison = iter(POISON.items())
    expected = []
    for n in range(good + k):
        if n in positions:
            name, values = next(poison)
            target.add(snapshot_row(f"poison-{n}", **values), 10, origin=("message", n))
            expected.append((("message", n), name))
        else:
            target.add(snapshot_row(f"good-{n}"), 10, origin=("message", n))
    unwritable_rows = metrics.CLICKHOUSE_UNWRITABLE.labels(SNAPSHOT_TABLE)
    before = unwritable_rows._value.get()

    unwritable = flushed(target)

    assert [u.origin for u in unwritable] == [origin for origin, _ in expected]
    assert all(isinstance(u, Unwritable) and u.row[4].startswith("poison-") for u in unwritable)
    assert all(0 < len(u.error) <= 300 and "\n" not in u.error for u in unwritable)
    assert "chunk_count" in unwritable[0].error  # the column, from the serialiser
    assert rows_in(chdb_url, "good-") == good
    assert rows_in(chdb_url, "poison-") == 0
    assert unwritable_rows._value.get() == before + k
    assert inserts[0] <= 1 + 2 * k * math.ceil(math.log2(good + k)), inserts[0]


def test_too_many_partitions_in_one_block_is_split_until_it_fits(chdb_url: str) -> None:
    """150 rows in 150 months (over max_partitions_per_insert_block, 100): no row is at
    fault, so halves are written until each fits, and nothing is unwritable."""
    inserts = [0]
    target = counting_sink(chdb_url, inserts)
    month = 31 * 86_400_000
    for n in range(150):
        target.add(snapshot_row(f"month-{n}", first_timestamp=TS + n * month), 10)
    refused = metrics.CLICKHOUSE_REFUSED.labels(SNAPSHOT_TABLE)
    before = refused._value.get()

    assert flushed(target) == []

    assert rows_in(chdb_url, "month-") == 150
    assert refused._value.get() == before + 1  # the whole block, once
    assert inserts[0] == 3  # the block, then its two halves


def test_failing_inserts_are_retried_until_they_succeed(
    chdb_url: str, chdb_path: Path, dead_disk: DeadDisk
) -> None:
    """The disk under chDB refuses every new part (chattr +i): a transient error, retried
    until it ends, while a poison row in the same batch is still found and returned."""
    store = chdb_path / "store"
    failures = metrics.CLICKHOUSE_FAILURES.labels(SNAPSHOT_TABLE)
    before = failures._value.get()
    target = sink(chdb_url)
    target.add(snapshot_row("r-1"), 10, origin="first")
    target.add(snapshot_row("r-2", chunk_count=-1), 10, origin="poison")
    target.add(snapshot_row("r-3"), 10, origin="third")

    async def scenario() -> list[Unwritable]:
        with dead_disk(store):
            flushing = asyncio.create_task(target.flush())
            async with asyncio.timeout(30):
                while failures._value.get() < before + 3:
                    assert not flushing.done()
                    await asyncio.sleep(0.05)
        async with asyncio.timeout(30):
            return await flushing

    unwritable = asyncio.run(scenario())
    assert [u.origin for u in unwritable] == ["poison"]
    assert rows_in(chdb_url, "r-") == 2


@pytest.mark.parametrize(
    "sql",
    [
        "INSERT INTO session_recording_events (chunk_id) VALUES ('x')",
        "DROP TABLE session_recording_events",
        "SELECT 1; DROP TABLE session_recording_events",
        "ALTER TABLE session_recording_events DELETE WHERE 1",
        "SET readonly = 0",
    ],
)
def test_queries_are_read_only(chdb_url: str, sql: str) -> None:
    with pytest.raises(ReadOnlyViolation):
        query_read_only(connect(chdb_url), sql)


def test_readonly_setting_backs_up_the_statement_check(chdb_url: str) -> None:
    with pytest.raises(Exception, match="readonly"):
        query_read_only(
            connect(chdb_url),
            "SELECT * FROM url('http://127.0.0.1:1/x', CSV) SETTINGS max_threads = 1, readonly = 0",
        )


def test_readme_example_sql_runs(chdb_url: str) -> None:
    """Every statement in the README's ```sql blocks is valid against the schema."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sql")[1:]]
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    assert len(statements) >= 5
    for statement in statements:
        sql = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        query_read_only(connect(chdb_url), sql)
