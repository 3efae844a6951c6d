"""The loop's durability before acks, with poison rows dead-lettered (its error boundary
and what it does with a stage's output: tests/unit/test_loop.py).

The sink writes into a real chDB; the dead-letter "topic" records what it is sent (the
loop only needs `send` and `get_topic_name` of it; the e2e tests use the real broker).
"""

from __future__ import annotations

import asyncio

from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect
from sinks.clickhouse.sink import ClickHouseSink
from streams.loop import Outbox
from streams.models import SourceRef
from streams.output import Original, Row
from streams.topics import CAPTURE_TOPIC
from tests.builders import snapshot_row
from tests.checks import rows_in
from tests.pipeline import RecordingTopic


def sink(url: str) -> ClickHouseSink:
    return ClickHouseSink(
        lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, max_rows=100, max_bytes=1 << 20
    )


def test_acks_wait_for_writes_in_order_with_a_bounded_number_in_flight(chdb_url: str) -> None:
    async def scenario() -> list[int]:
        out = Outbox(sink(chdb_url), RecordingTopic(), depth=2)
        acked: list[int] = []
        for n in range(6):
            out.sink.add(snapshot_row(f"o-{n}"), 10)

            async def finish(n: int = n) -> None:
                assert rows_in(chdb_url, f"o-{n}") == 1, "acked before its row was durable"
                acked.append(n)

            await out.seal(finish)
            assert len(out._writes) <= 2  # the agent goes on with at most `depth` pending
        await out.drain()
        assert not out._writes
        return acked

    assert asyncio.run(scenario()) == list(range(6))


def test_rows_that_can_never_be_written_are_dead_lettered_before_the_ack(chdb_url: str) -> None:
    dlq = RecordingTopic()
    origin = Original(b"the message", b"key", SourceRef(CAPTURE_TOPIC, 1, 5))

    async def scenario() -> bool:
        out = Outbox(sink(chdb_url), dlq, depth=0)
        for n in range(20):
            out.sink.add(snapshot_row(f"p-{n}"), 10, (Original(b"good", None, origin.source),))
        poison = Row(snapshot_row("p-poison", chunk_count=70_000), 10, (origin,))
        out.sink.add(poison.values, poison.nbytes, poison.origin)
        acked = []

        async def finish() -> None:
            acked.append(len(dlq.sent))

        await out.seal(finish)
        await out.drain()
        return acked == [1]

    assert asyncio.run(scenario()), "the letter was sent before the batch was acked"
    assert rows_in(chdb_url, "p-") == 20
    (letter,) = dlq.sent
    headers = dict(letter["headers"])
    assert letter["value"] == b"the message" and letter["key"] == b"key"
    assert headers["dlq-reason"] == b"unwritable_row" and headers["dlq-stage"] == b"sink"
    assert headers["dlq-source-offset"] == b"5"
