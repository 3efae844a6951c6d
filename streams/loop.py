"""The one loop that drives every stage: the error boundary, the takes and the acks.

For each take (the messages a Faust agent takes from its stream at once),
:class:`StageLoop` calls the stage once per message and applies what it returns: rows
to the sink, forwards to the `reassemble` topic, dead letters to the DLQ, statistics to
the `summarize` topic. Any exception a stage raises while handling one message (a bug,
RecursionError, a tombstone, a null header...) is caught here, and only here: the
message's original bytes go to the dead-letter topic as ``internal_error`` with the
stage, the exception type and a short message, and the take goes on. Failures of the
infrastructure (Kafka, ClickHouse) are not a message's fault: they happen outside the
boundary and are retried by the sink or stop the agent, never dropped.

A take is acknowledged only after its rows are in ClickHouse, its records delivered
and its rows that can never be written dead-lettered (``unwritable_row``). With
``REPLAY_TAKES_IN_FLIGHT`` > 0 that durability is awaited in the background, that many
writes deep, so the agent handles the next take while the previous one is inserted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, cast

from aiokafka.partitioner import DefaultPartitioner
from faust.types import EventT

import metrics
from sinks.clickhouse.sink import ClickHouseSink, Unwritable
from streams.dlq import Rejected, dlq_headers
from streams.models import BatchStats, SourceRef, encode_stats
from streams.output import Letter, Message, Original, Output
from streams.tables import event_context

log = logging.getLogger(__name__)
STATS_RECORD_BYTES = 256 * 1024  # well under Kafka's default 1 MB record limit
After = Callable[[], None]


class Stage(Protocol):
    name: str

    def handle(self, message: Message, now: float) -> Output: ...


@functools.lru_cache(maxsize=1 << 16)
def partition_of(session_key: str, partitions: int) -> int:
    """The partition a record keyed by `session_key` goes to (murmur2, as the producer
    places a keyed record); cached, as a session sends many batches."""
    every = list(range(partitions))
    return cast(int, DefaultPartitioner()(session_key.encode(), every, every))


def message_of(event: EventT) -> Message:
    """A Faust event as a stage sees it; headers may be a dict or pairs, values None."""
    raw: Any = event.message
    headers = raw.headers or ()
    pairs = headers.items() if isinstance(headers, dict) else headers
    timestamp = getattr(raw, "timestamp", None)
    moment = timestamp if isinstance(timestamp, int | float) else None
    return Message(raw.topic, raw.partition, raw.offset, raw.key, event.value, tuple(pairs), moment)


def internal_error(event: EventT, stage: str, exc: BaseException) -> Output:
    """The dead letter of a message whose handling raised: its bytes, untouched."""
    raw: Any = event.message
    value = event.value if isinstance(event.value, bytes) else None
    key = raw.key if isinstance(raw.key, bytes) else None
    headers = raw.headers or ()
    pairs = tuple(headers.items() if isinstance(headers, dict) else headers)
    error = f"{type(exc).__name__}: {str(exc)[:200]}"
    log.warning(
        "internal error in %s at %s/%s/%s: %s", stage, raw.topic, raw.partition, raw.offset, error
    )
    original = Original(value, key, SourceRef(raw.topic, raw.partition, raw.offset), pairs)
    return Output.dead((original,), Rejected("internal_error", stage, error))


def count_in(events: Sequence[EventT]) -> None:
    """Messages and bytes consumed, per partition: one metric update per partition and
    take rather than per message (label lookups are a hot-path cost)."""
    counts: dict[tuple[str, int], list[int]] = {}
    for event in events:
        message = event.message
        count = counts.setdefault((message.topic, message.partition), [0, 0])
        count[0] += 1
        count[1] += len(event.value) if isinstance(event.value, bytes) else 0
    for (topic, partition), (messages, nbytes) in counts.items():
        metrics.MESSAGES_CONSUMED.labels(topic, str(partition)).inc(messages)
        metrics.BYTES_CONSUMED.labels(topic, str(partition)).inc(nbytes)


@dataclass
class Outbox:
    """What one agent's current take produced, all of which must be durable before its ack.

    One per agent: the agents interleave on the event loop, and none may take another's
    records (or rows) as its own. Sealed writes become durable in the background, in
    order, at most `depth` of them unfinished while the agent goes on (0: each is
    durable before the agent continues), so rows in memory stay within (depth + 1) x
    the sink's byte limit.
    """

    sink: ClickHouseSink
    dlq: Any  # the dead-letter topic of this agent's input
    depth: int = 0
    sends: list[Awaitable[Any]] = field(default_factory=list)
    _writes: deque[asyncio.Future[None]] = field(default_factory=deque)

    async def dead_letter(self, letter: Letter) -> None:
        original, rejection = letter
        metrics.DLQ_MESSAGES.labels(
            self.dlq.get_topic_name(), rejection.reason, rejection.stage
        ).inc()
        headers = dlq_headers(rejection, original.source, original.headers)
        value = original.value if original.value is not None else b""
        self.sends.append(await self.dlq.send(key=original.key, value=value, headers=headers))

    async def seal(self, finish: Callable[[], Awaitable[None]] | None = None) -> None:
        """Detach the records and rows so far; in the background wait for the records,
        write the rows after every earlier write, dead-letter the rows that can never be
        written, then run `finish` (acks). Returns once at most `depth` writes are
        unfinished; re-raises a failed write."""
        sends, self.sends = self.sends, []
        block = self.sink.detach()
        previous = self._writes[-1] if self._writes else None

        async def durable() -> None:
            if sends:
                await asyncio.gather(*sends)
            if previous is not None:
                await previous
            if block.rows:
                await self._unwritable(await self.sink.write(block))
            if finish is not None:
                await finish()

        self._writes.append(asyncio.ensure_future(durable()))
        await self.drain(self.depth)

    async def _unwritable(self, rows: list[Unwritable]) -> None:
        for row in rows:
            rejection = Rejected("unwritable_row", "sink", row.error)
            for original in row.origin:
                await self.dead_letter(Letter(original, rejection))
        sends, self.sends = self.sends, []
        if sends:
            await asyncio.gather(*sends)

    async def drain(self, depth: int = 0) -> None:
        """Wait until at most `depth` writes are unfinished (0: all are durable)."""
        while self._writes and (self._writes[0].done() or len(self._writes) > depth):
            await self._writes.popleft()  # re-raises a failed write: the agent stops


@dataclass
class StageLoop:
    """Drives one stage over takes of events; see the module docstring."""

    stage: Stage
    out: Outbox
    reassemble_topic: Any = None  # where the stage's forwards go
    summarize_topic: Any = None  # where its statistics go, a few records per partition
    partitions: int = 1
    newest_event: dict[tuple[str, int], int] = field(default_factory=dict)
    _stats: list[BatchStats] = field(default_factory=list)

    def handle_one(self, event: EventT, now: float) -> Output:
        """The error boundary: whatever the stage raises becomes this message's letter."""
        try:
            return self.stage.handle(message_of(event), now)
        except Exception as exc:
            return internal_error(event, self.stage.name, exc)

    async def handle(self, events: Sequence[EventT]) -> list[After]:
        """Handle one take; returns what to run once it is durable (before its acks)."""
        count_in(events)
        now = time.time()
        afters: list[After] = []
        for event in events:
            with event_context(event):
                out = self.handle_one(event, now)
            await self._apply(event, out)
            afters += [functools.partial(_in_context, event, after) for after in out.after]
        await self._send_stats()
        return afters

    async def _apply(self, event: EventT, out: Output) -> None:
        for row in out.rows:
            self.out.sink.add(row.values, row.nbytes, row.origin)
            if self.out.sink.full:
                await self.out.seal()
        for forward in out.forwards:
            record = await self.reassemble_topic.send(
                key=forward.key, value=forward.value, headers=forward.headers
            )
            self.out.sends.append(record)
        for letter in out.letters:
            await self.out.dead_letter(letter)
        self._stats += out.stats
        if out.newest_ms:
            where = (event.message.topic, event.message.partition)
            self.newest_event[where] = max(self.newest_event.get(where, 0), out.newest_ms)

    async def _send_stats(self) -> None:
        """The take's batch statistics, a few records per partition of `summarize`: each to
        the partition its (team, session) key hashes to, as a keyed record would go."""
        by_partition: dict[int, list[BatchStats]] = {}
        for stats in self._stats:
            metrics.SNAPSHOT_BATCHES.inc()
            key = f"{stats.team_id}:{stats.session_id}"
            by_partition.setdefault(partition_of(key, self.partitions), []).append(stats)
        self._stats = []
        for partition, batches in by_partition.items():
            for value in encode_stats(batches, STATS_RECORD_BYTES):
                record = await self.summarize_topic.send(value=value, partition=partition)
                self.out.sends.append(record)


def _in_context(event: EventT, after: After) -> None:
    """Table writes go to the changelog partition of the current event: make it `event`."""
    with event_context(event):
        after()
