"""The loop: its error boundary, and durability before acks with poison rows dead-lettered.

The sink writes into a real chDB; the dead-letter "topic" records what it is sent (the
loop only needs `send` and `get_topic_name` of it; the e2e tests use the real broker).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import pytest

from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect, ensure_schema
from sinks.clickhouse.sink import ClickHouseSink
from streams.dlq import REASONS
from streams.loop import Outbox, StageLoop
from streams.models import SourceRef
from streams.output import Message, Original, Output, Row
from tests.e2e.test_clickhouse import count, row


@dataclass
class RecordingTopic:
    """Stands in for a Faust topic: remembers every record sent to it."""

    name: str = "session_recording_events_dlq"
    sent: list[dict[str, Any]] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, **record: Any) -> asyncio.Future[None]:
        self.sent.append(record)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


@dataclass
class Raw:
    topic: str = "session_recording_events"
    partition: int = 2
    offset: int = 17
    key: bytes | None = b"k"
    headers: Any = ((("token", None)),)


@dataclass
class Event:
    """The two attributes of a Faust event a stage loop reads."""

    value: Any
    message: Raw = field(default_factory=Raw)


class Exploding:
    name = "ingest"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def handle(self, message: Message, now: float) -> Output:
        raise self.error


@pytest.fixture(scope="module")
def chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    url = f"chdb://{tmp_path_factory.mktemp('loop') / 'db'}"
    ensure_schema(connect(url))
    return url


def sink(url: str) -> ClickHouseSink:
    return ClickHouseSink(
        lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, max_rows=100, max_bytes=1 << 20
    )


@pytest.mark.parametrize(
    "error",
    [RecursionError("deep"), KeyError("x"), TypeError("None"), ValueError(), ZeroDivisionError()],
)
def test_whatever_a_stage_raises_becomes_one_internal_error_letter(error: Exception) -> None:
    loop = StageLoop(Exploding(error), Outbox(None, RecordingTopic()))  # type: ignore[arg-type]
    out = loop.handle_one(Event(b"original \x00 bytes"), 0.0)  # type: ignore[arg-type]
    assert len(out.letters) == 1 and not out.rows and not out.forwards
    original, rejection = out.letters[0]
    assert rejection.reason == "internal_error" in REASONS
    assert rejection.stage == "ingest" and type(error).__name__ in rejection.error
    assert original.value == b"original \x00 bytes"
    assert original.source == SourceRef("session_recording_events", 2, 17)


def test_a_tombstone_that_breaks_a_stage_is_a_letter_too() -> None:
    loop = StageLoop(Exploding(TypeError("NoneType")), Outbox(None, RecordingTopic()))  # type: ignore[arg-type]
    out = loop.handle_one(Event(None), 0.0)  # type: ignore[arg-type]
    assert out.letters[0].original.value is None


def test_acks_wait_for_writes_in_order_with_a_bounded_number_in_flight(chdb_url: str) -> None:
    async def scenario() -> list[int]:
        out = Outbox(sink(chdb_url), RecordingTopic(), depth=2)
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


def test_rows_that_can_never_be_written_are_dead_lettered_before_the_ack(chdb_url: str) -> None:
    dlq = RecordingTopic()
    origin = Original(b"the message", b"key", SourceRef("session_recording_events", 1, 5))

    async def scenario() -> bool:
        out = Outbox(sink(chdb_url), dlq, depth=0)
        for n in range(20):
            out.sink.add(row(f"p-{n}"), 10, (Original(b"good", None, origin.source),))
        poison = Row(row("p-poison", chunk_count=70_000), 10, (origin,))
        out.sink.add(poison.values, poison.nbytes, poison.origin)
        acked = []

        async def finish() -> None:
            acked.append(len(dlq.sent))

        await out.seal(finish)
        await out.drain()
        return acked == [1]

    assert asyncio.run(scenario()), "the letter was sent before the take was acked"
    assert count(chdb_url, "p-") == 20
    (letter,) = dlq.sent
    headers = dict(letter["headers"])
    assert letter["value"] == b"the message" and letter["key"] == b"key"
    assert headers["dlq-reason"] == b"unwritable_row" and headers["dlq-stage"] == b"sink"
    assert headers["dlq-source-offset"] == b"5"
