"""The loop without Kafka or ClickHouse: its error boundary, what it does with a
stage's output (rows to the sink, forwards and letters to their topics, statistics to
the partition of their session), and acks that wait for every delivery, in order.
Stand-ins for the Faust event and topics come from tests/pipeline.py; rows are only
added to the sink here (writing them on chDB: tests/e2e/test_loop.py)."""

from __future__ import annotations

import asyncio
from typing import Any, NoReturn

import pytest

from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE
from sinks.clickhouse.sink import ClickHouseSink
from streams.dlq import REASONS, Rejected
from streams.loop import Outbox, StageLoop, partition_of
from streams.models import SourceRef, decode_stats
from streams.output import Letter, Message, Original, Output
from streams.topics import CAPTURE_TOPIC
from tests import builders
from tests.pipeline import Event, Record, RecordingTopic, ingest_stage

PARTITIONS = 4


class Exploding:
    name = "ingest"

    def __init__(self, error: BaseException) -> None:
        self.error = error

    def handle(self, message: Message, now: float) -> Output:
        raise self.error


def no_client() -> NoReturn:
    raise AssertionError("the sink wrote: nothing here is full or sealed with rows")


def sink() -> ClickHouseSink:
    """A sink that holds rows and never writes them (no ClickHouse in this tier)."""
    return ClickHouseSink(no_client, SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, 100, 1 << 20)


async def run_ready() -> None:
    """Let every task that can go on do so (no timer: they wait only on futures)."""
    for _ in range(20):
        await asyncio.sleep(0)


@pytest.mark.parametrize(
    "error",
    [RecursionError("deep"), KeyError("x"), TypeError("None"), ValueError(), ZeroDivisionError()],
)
def test_whatever_a_stage_raises_becomes_one_internal_error_letter(error: Exception) -> None:
    loop = StageLoop(Exploding(error), Outbox(sink(), RecordingTopic()))
    out = loop.handle_one(Event(b"original \x00 bytes"), 0.0)  # type: ignore[arg-type]
    assert len(out.letters) == 1 and not out.rows and not out.forwards
    original, rejection = out.letters[0]
    assert rejection.reason == "internal_error" in REASONS
    assert rejection.stage == "ingest" and type(error).__name__ in rejection.error
    assert original.value == b"original \x00 bytes"
    assert original.source == SourceRef(CAPTURE_TOPIC, 2, 17)


def test_a_tombstone_that_breaks_a_stage_is_a_letter_too() -> None:
    loop = StageLoop(Exploding(TypeError("NoneType")), Outbox(sink(), RecordingTopic()))
    out = loop.handle_one(Event(None), 0.0)  # type: ignore[arg-type]
    assert out.letters[0].original.value is None


def test_a_batch_goes_to_the_sink_and_its_topics_and_waits_for_them() -> None:
    """A single-piece batch (a row and statistics), a piece of a larger set (a forward)
    and a message of an unknown team (a letter), handled as one batch of events."""
    single = builders.capture(session_id="single")
    piece, _ = builders.pieces_of(builders.events(20), 2, session_id="pieces")
    unknown = builders.capture(token="who-knows")
    events = [
        Event(value, Record(CAPTURE_TOPIC, 1, offset, None, ()))
        for offset, value in enumerate((single, piece, unknown))
    ]
    dlq, forwards, stats = RecordingTopic(), RecordingTopic("chunks"), RecordingTopic("stats")
    loop = StageLoop(ingest_stage(), Outbox(sink(), dlq), forwards, stats, PARTITIONS)

    afters = asyncio.run(loop.handle(events))  # type: ignore[arg-type]

    (row,) = loop.out.sink.rows
    assert row[SNAPSHOT_COLUMNS.index("session_id")] == "single"
    assert loop.out.sink.origins == [(Original(single, None, SourceRef(CAPTURE_TOPIC, 1, 0)),)]
    (forward,) = forwards.sent
    assert (forward["key"], forward["value"]) == (b"1:pieces", piece)
    assert dict(forward["headers"])["replay-source-offset"] == b"1"
    (letter,) = dlq.sent
    headers = dict(letter["headers"])
    assert letter["value"] == unknown and headers["dlq-reason"] == b"unknown_token"
    assert (headers["dlq-source-partition"], headers["dlq-source-offset"]) == (b"1", b"2")
    (record,) = stats.sent
    assert [s.session_id for s in decode_stats(record["value"])] == ["single"]
    assert record["partition"] == partition_of("1:single", PARTITIONS)
    newest = builders.events()[-1]["timestamp"]
    assert loop.newest_event == {(CAPTURE_TOPIC, 1): newest}
    assert len(loop.out.sends) == 3, "the forward, the letter and the statistics to await"
    assert afters == []  # ingest holds no state


def test_acks_wait_for_deliveries_in_order_even_when_a_later_batch_is_done_first() -> None:
    rejection = Rejected("unknown_token", "authorize", "no such token")
    source = SourceRef(CAPTURE_TOPIC, 0, 0)

    async def scenario() -> list[Any]:
        dlq = RecordingTopic(held=True)
        out = Outbox(sink(), dlq, depth=2)
        acked: list[Any] = []
        for n in range(2):
            await out.dead_letter(Letter(Original(b"m", None, source), rejection))

            async def finish(n: int = n) -> None:
                acked.append(n)

            await out.seal(finish)  # returns: at most `depth` unfinished
        await run_ready()
        acked.append("both delivered?")
        dlq.deliveries[1].set_result(None)  # the later batch's letter arrives first
        await run_ready()
        acked.append("the first delivered?")
        dlq.deliveries[0].set_result(None)
        await out.drain()
        return acked

    assert asyncio.run(scenario()) == ["both delivered?", "the first delivered?", 0, 1]
