"""The ClickHouse sink and read-only queries, on a real chDB."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path

import pytest

import metrics
from sinks.clickhouse import (
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TABLE,
    ClickHouseSink,
    connect,
    ensure_schema,
)
from sinks.sql_guard import ReadOnlyViolation, query_read_only
from streams.agents import Outbox

TS = 1_793_000_000_000


def row(chunk_id: str, size: int = 10) -> tuple:
    return (1, "d", "s", "w", chunk_id, 1, TS, TS + 5, True, 2, size, "[]")


@pytest.fixture(scope="module")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"chdb://{tmp_path_factory.mktemp('chdb') / 'db'}"
    client = connect(url)
    ensure_schema(client)
    ensure_schema(client)  # idempotent
    return url


def sink(url: str, **kwargs: object) -> ClickHouseSink:
    return ClickHouseSink(
        lambda: connect(url),
        SNAPSHOT_TABLE,
        SNAPSHOT_COLUMNS,
        max_rows=kwargs.pop("max_rows", 3),
        max_bytes=kwargs.pop("max_bytes", 100),  # type: ignore[arg-type]
        retry_max_seconds=0.2,
    )


def count(url: str, chunk_prefix: str) -> int:
    _, rows = query_read_only(
        connect(url),
        f"SELECT count() FROM {SNAPSHOT_TABLE} FINAL WHERE startsWith(chunk_id, '{chunk_prefix}')",
    )
    return int(rows[0][0])


def test_batches_are_bounded_and_replays_collapse(chdb_url: str) -> None:
    target = sink(chdb_url)
    target.add(row("b-1"), 10)
    target.add(row("b-2"), 10)
    assert not target.full
    target.add(row("b-3"), 10)
    assert target.full  # rows bound
    asyncio.run(target.flush())
    assert target.rows == [] and target.nbytes == 0
    target.add(row("b-1", size=200), 200)
    assert target.full  # bytes bound
    asyncio.run(target.flush())
    assert count(chdb_url, "b-") == 3  # b-1 written twice, read once


def test_failing_inserts_are_retried_until_they_succeed(chdb_url: str, tmp_path: Path) -> None:
    store = Path(chdb_url.removeprefix("chdb://")) / "store"
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(tmp_path)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i is not available on this filesystem")
    subprocess.run(["chattr", "-i", str(tmp_path)], check=True)
    failures = metrics.CLICKHOUSE_FAILURES.labels(SNAPSHOT_TABLE)
    before = failures._value.get()
    target = sink(chdb_url)
    target.add(row("r-1"), 10)

    async def scenario() -> None:
        subprocess.run(["chattr", "-R", "+i", str(store)], check=True)
        try:
            flushing = asyncio.create_task(target.flush())
            async with asyncio.timeout(30):
                while failures._value.get() < before + 3:
                    assert not flushing.done()
                    await asyncio.sleep(0.05)
        finally:
            subprocess.run(["chattr", "-R", "-i", str(store)], check=True)
        async with asyncio.timeout(30):
            await flushing

    asyncio.run(scenario())
    assert count(chdb_url, "r-") == 1


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
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    blocks = [b.split("```", 1)[0] for b in readme.split("```sql")[1:]]
    statements = [s.strip() for block in blocks for s in block.split(";") if s.strip()]
    assert len(statements) >= 5
    for statement in statements:
        sql = "\n".join(line for line in statement.splitlines() if not line.startswith("--"))
        query_read_only(connect(chdb_url), sql)


def test_outbox_acks_writes_in_order_with_a_bounded_number_in_flight(chdb_url: str) -> None:
    async def scenario() -> list[int]:
        out = Outbox(sink(chdb_url, max_rows=100), dlq=None, depth=2)
        acked: list[int] = []
        for n in range(6):
            out.sink.add(row(f"o-{n}"), 10)

            async def finish(n: int = n) -> None:
                assert count(chdb_url, f"o-{n}") == 1, "acked before its row was durable"
                acked.append(n)

            await out.seal(finish)
            assert len(out._writes) <= 2  # the agent goes on with at most `depth` pending
        await out.drain()
        assert not out._writes
        return acked

    assert asyncio.run(scenario()) == list(range(6))
