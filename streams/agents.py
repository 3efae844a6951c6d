"""The agents: short loops that wire the pure stages (parse, reassemble, decode) to
Kafka topics, the reassembly table, the dead-letter topic and the ClickHouse sink.

Three stages:

1. ``ingest`` reads the capture topic. It parses and authorises each message; a
   single-piece batch (the common case) is decoded right there, a piece of a larger set
   is forwarded untouched to the repartition topic keyed by (team_id, session_id), so
   every piece of a set meets on one partition whatever partition it came in on.
2. ``reassemble`` holds those pieces in the ``pending_chunks`` table until the set is
   complete, then decodes it. A leader timer sends a tick to every partition, on which
   sets older than the chunk TTL are expired to the DLQ with every piece they held.

3. ``summarize`` receives the decoded batches' statistics, a few records per handled
   batch, each on the partition of its (team_id, session_id), and counts them (one
   table write per window touched) into the session's event-time window in the
   ``session_windows`` table; on flush ticks it writes the windows' partial aggregates
   to ``session_replay_events`` and closes the windows that are over.

All take batches with acks disabled and acknowledge a batch's messages only after its
rows are in ClickHouse, its DLQ and forwarded records are delivered and (at commit,
where Faust flushes the producer) its table writes are in the changelog. With
REPLAY_BATCHES_IN_FLIGHT > 0 that durability is awaited in the background, that many
writes deep, so the agent decodes the next batch while the previous one is inserted.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
import msgspec
from aiokafka.partitioner import DefaultPartitioner
from faust.types import EventT

import metrics
from config.settings import Settings
from config.teams import TeamRegistry
from sinks.clickhouse import ClickHouseSink
from streams.batches import decode_batch, flag_disagrees, row_values
from streams.dlq import Rejected, dlq_headers
from streams.models import BatchStats, Chunk, SourceRef, decode_stats, encode_stats
from streams.parse import parse_capture
from streams.performance import parse_performance
from streams.reassembly import Outcome, PendingChunks
from streams.tables import event_context
from streams.windows import PartRow, SessionWindows, part_values

log = logging.getLogger(__name__)

CAPTURE_TOPIC = "session_recording_events"
DLQ_TOPIC = "session_recording_events_dlq"
PERFORMANCE_TOPIC = "performance_events_batches"
PERFORMANCE_DLQ_TOPIC = "performance_events_batches_dlq"
TICK_HEADER = "replay-tick"
SOURCE_HEADERS = ("replay-source-topic", "replay-source-partition", "replay-source-offset")
STATS_RECORD_BYTES = 256 * 1024  # well under Kafka's default 1 MB record limit


@functools.lru_cache(maxsize=1 << 16)
def _partition_of(session_key: str, partitions: int) -> int:
    """The partition a record keyed by `session_key` goes to (murmur2, as the producer
    places a keyed record); cached, as a session sends many batches."""
    every = list(range(partitions))
    return cast(int, DefaultPartitioner()(session_key.encode(), every, every))


def _headers(event: EventT) -> list[tuple[str, bytes]]:
    headers: Any = event.message.headers or []
    return list(headers.items() if isinstance(headers, dict) else headers)


def source_of(event: EventT) -> SourceRef:
    """The original coordinates: from our headers after a repartition, else the event's."""
    headers = dict(_headers(event))
    try:
        topic, partition, offset = (headers[name] for name in SOURCE_HEADERS)
        return SourceRef(topic.decode(), int(partition), int(offset))
    except (KeyError, ValueError, UnicodeDecodeError):
        message = event.message
        return SourceRef(message.topic, message.partition, message.offset)


def _source_headers(source: SourceRef) -> list[tuple[str, bytes]]:
    values = (source.topic, str(source.partition), str(source.offset))
    return [(name, value.encode()) for name, value in zip(SOURCE_HEADERS, values, strict=True)]


def _count_in(events: Sequence[EventT]) -> None:
    """Messages and bytes consumed, per partition: one metric update per partition and
    batch rather than per message (label lookups are a hot-path cost)."""
    counts: dict[tuple[str, int], list[int]] = {}
    for event in events:
        message = event.message
        count = counts.setdefault((message.topic, message.partition), [0, 0])
        count[0] += 1
        count[1] += len(event.value or b"")
    for (topic, partition), (messages, nbytes) in counts.items():
        metrics.MESSAGES_CONSUMED.labels(topic, str(partition)).inc(messages)
        metrics.BYTES_CONSUMED.labels(topic, str(partition)).inc(nbytes)


# What a handled batch does once durable, before its acks (release pieces, mark parts).
After = Callable[[], None] | None
Handler = Callable[[Sequence[EventT]], Awaitable[After]]


@dataclass
class Outbox:
    """What one agent's current batch produced, all of which must be durable before its ack.

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
    stats: list[BatchStats] = field(default_factory=list)  # sent once the batch is handled
    _writes: deque[asyncio.Future[None]] = field(default_factory=deque)

    async def seal(self, finish: Callable[[], Awaitable[None]] | None = None) -> None:
        """Detach the records and rows so far; in the background wait for the records,
        write the rows after every earlier write, then run `finish` (acks). Returns once
        at most `depth` writes are unfinished; re-raises a failed write."""
        sends, self.sends = self.sends, []
        rows, nbytes = self.sink.detach()
        previous = self._writes[-1] if self._writes else None

        async def durable() -> None:
            if sends:
                await asyncio.gather(*sends)
            if previous is not None:
                await previous
            if rows:
                await self.sink.write(rows, nbytes)
            if finish is not None:
                await finish()

        self._writes.append(asyncio.ensure_future(durable()))
        await self.drain(self.depth)

    async def drain(self, depth: int = 0) -> None:
        """Wait until at most `depth` writes are unfinished (0: all are durable)."""
        while self._writes and (self._writes[0].done() or len(self._writes) > depth):
            await self._writes.popleft()  # re-raises a failed write: the agent stops


@dataclass
class Pipeline:
    """Everything the agents share; each method handles one batch of one stage."""

    settings: Settings
    registry: TeamRegistry
    chunks_topic: Any
    pending: PendingChunks
    stats_topic: Any
    windows: SessionWindows
    capture_out: Outbox
    pieces_out: Outbox
    summary_out: Outbox
    performance_out: Outbox
    # newest rrweb timestamp (ms) decoded per (topic, partition): the event-time lag
    newest_event: dict[tuple[str, int], int] = field(default_factory=dict)

    def _parse(self, raw: bytes) -> Chunk:
        return parse_capture(raw, self.registry, self.settings.max_message_bytes)

    async def _dead_letter(
        self,
        out: Outbox,
        raw: bytes,
        key: bytes | None,
        rejection: Rejected,
        source: SourceRef,
        original: list[tuple[str, bytes]] | None = None,
    ) -> None:
        metrics.DLQ_MESSAGES.labels(
            out.dlq.get_topic_name(), rejection.reason, rejection.stage
        ).inc()
        log.debug("dead letter %s: %s", source, rejection)
        headers = dlq_headers(rejection, source, original)
        out.sends.append(await out.dlq.send(key=key, value=raw, headers=headers))

    async def _add_row(self, out: Outbox, event: EventT, pieces: Sequence[Chunk]) -> None:
        """Decode one complete set: its row to the sink, its statistics to `summarize`."""
        head = pieces[0]
        retention = self.registry.retention_days(head.team_id, self.settings.retention_days)
        row, stats = decode_batch(pieces, self.settings.max_decoded_bytes, retention)
        if flag_disagrees(head, row):
            metrics.FULL_SNAPSHOT_FLAG_MISMATCH.labels(str(head.producer_full_snapshot)).inc()
        metrics.SNAPSHOT_BATCHES.labels(str(row.team_id)).inc()
        where = (event.message.topic, event.message.partition)
        self.newest_event[where] = max(self.newest_event.get(where, 0), row.last_timestamp)
        out.stats.append(stats)
        out.sink.add(row_values(row), row.size)
        if out.sink.full:
            await out.seal()

    async def _send_stats(self, out: Outbox) -> None:
        """The batch's statistics, a few records per partition of `summarize`: each to
        the partition its (team, session) key hashes to, as a keyed record would go."""
        by_partition: dict[int, list[BatchStats]] = {}
        for stats in out.stats:
            key = f"{stats.team_id}:{stats.session_id}"
            by_partition.setdefault(_partition_of(key, self.settings.partitions), []).append(stats)
        out.stats = []
        for partition, batches in by_partition.items():
            for value in encode_stats(batches, STATS_RECORD_BYTES):
                out.sends.append(await self.stats_topic.send(value=value, partition=partition))

    async def handle_capture(self, events: Sequence[EventT]) -> After:
        """Stage 1: validate, decode single-piece sets, forward pieces of larger ones."""
        out = self.capture_out
        _count_in(events)
        for event in events:
            raw = event.value
            try:
                chunk = self._parse(raw)
                if chunk.chunk_count == 1:
                    await self._add_row(out, event, [chunk])
                    continue
            except Rejected as rejection:
                source, original = source_of(event), _headers(event)
                await self._dead_letter(out, raw, event.key, rejection, source, original)
                continue
            key, headers = chunk.session_key.encode(), _source_headers(source_of(event))
            out.sends.append(await self.chunks_topic.send(key=key, value=raw, headers=headers))
        await self._send_stats(out)
        return None

    async def handle_pieces(self, events: Sequence[EventT]) -> After:
        """Stage 2: hold pieces until their set is complete; expire old sets on ticks."""
        now = time.time()
        completed: list[tuple[EventT, str]] = []
        for event in events:
            with event_context(event):
                if dict(_headers(event)).get(TICK_HEADER) is not None:
                    await self._expire(event.message.partition, now)
                    continue
                _count_in([event])
                set_key = await self._hold(event, now, {key for _, key in completed})
                if set_key is not None:
                    completed.append((event, set_key))
        await self._send_stats(self.pieces_out)

        def release() -> None:  # only once the rows are in ClickHouse
            for event, set_key in completed:
                with event_context(event):
                    self.pending.release(set_key, now)

        return release

    async def _hold(self, event: EventT, now: float, completing: set[str]) -> str | None:
        """Hold one piece; decode its set if it completes it. Returns the completed set."""
        raw, source = event.value, source_of(event)
        try:
            chunk = self._parse(raw)
        except Rejected as rejection:
            await self._dead_letter(self.pieces_out, raw, event.key, rejection, source)
            return None
        if chunk.set_key in completing:
            metrics.CHUNK_PIECES.labels(Outcome.DUPLICATE.value).inc()
            return None
        outcome = self.pending.add(
            chunk.set_key,
            chunk.chunk_index,
            chunk.chunk_count,
            raw,
            source,
            event.message.partition,
            now,
        )
        metrics.CHUNK_PIECES.labels(outcome.value).inc()
        if outcome is Outcome.MISMATCH:
            error = f"chunk_count {chunk.chunk_count} differs from the set's earlier pieces"
            mismatch = Rejected("invalid_chunk", "reassemble", error)
            await self._dead_letter(self.pieces_out, raw, event.key, mismatch, source)
        if outcome is not Outcome.COMPLETE:
            return None
        state = self.pending.state(chunk.set_key)
        if state is not None:
            metrics.REASSEMBLY_SECONDS.observe(max(0.0, now - state.first_seen))
        pieces = self.pending.pieces(chunk.set_key)
        try:
            chunks = [self._parse(piece) for piece, _ in pieces]
            await self._add_row(self.pieces_out, event, chunks)
        except Rejected as rejection:
            for piece, piece_source in pieces:
                await self._dead_letter(self.pieces_out, piece, event.key, rejection, piece_source)
        return chunk.set_key

    async def _expire(self, partition: int, now: float) -> None:
        ttl = self.settings.chunk_ttl_seconds
        for expired in self.pending.expire(partition, now, ttl):
            metrics.CHUNK_SETS_EXPIRED.inc()
            error = f"{len(expired.pieces)} piece(s) held, set incomplete after {ttl}s"
            for piece, source in expired.pieces:
                rejection = Rejected("chunk_expired", "reassemble", error)
                key = expired.set_key.encode()
                await self._dead_letter(self.pieces_out, piece, key, rejection, source)
        sets, held = self.pending.pending()
        metrics.CHUNK_SETS_PENDING.set(sets)
        metrics.CHUNK_PENDING_BYTES.set(held)

    async def handle_stats(self, events: Sequence[EventT]) -> After:
        """Stage 3: count batches into session windows; flush and close them on ticks."""
        now = time.time()
        flushed: list[tuple[EventT, list[PartRow]]] = []
        out = self.summary_out
        for event in events:
            with event_context(event):
                if dict(_headers(event)).get(TICK_HEADER) is not None:
                    flushed.append((event, self._flush_windows(event.message.partition, now)))
                    continue
                _count_in([event])
                try:
                    batches = decode_stats(event.value)
                except msgspec.DecodeError as exc:
                    rejection = Rejected("invalid_event", "summarize", str(exc))
                    await self._dead_letter(
                        out, event.value, event.key, rejection, source_of(event)
                    )
                    continue
                counted = self.windows.add_many(batches, event.message.partition, now)
                metrics.SUMMARY_BATCHES.labels("counted").inc(sum(counted))
                metrics.SUMMARY_BATCHES.labels("duplicate").inc(len(counted) - sum(counted))

        def mark() -> None:  # only once the parts are in ClickHouse
            for event, rows in flushed:
                with event_context(event):
                    self.windows.flushed(rows, now)
                    self.windows.forget(event.message.partition, now)

        return mark

    def _flush_windows(self, partition: int, now: float) -> list[PartRow]:
        """Queue the rows of every part with new batches; returns what to mark once durable."""
        rows = self.windows.due(partition, now)
        for row in rows:
            if row.part.version > row.part.flushed_version:
                self.summary_out.sink.add(part_values(row), 1)
            if row.close:
                metrics.SUMMARY_PARTS_CLOSED.inc()
        sessions = self.windows.sessions(partition)
        for has_full in (True, False):
            count = sum(1 for full in sessions.values() if full is has_full)
            metrics.RECENT_SESSIONS.labels(str(partition), str(has_full).lower()).set(count)
        return rows

    async def handle_performance(self, events: Sequence[EventT]) -> After:
        """Performance batches: one row per entry; bad batches and entries to their DLQ."""
        out = self.performance_out
        _count_in(events)
        for event in events:
            raw, source = event.value, source_of(event)
            try:
                rows, problem = parse_performance(
                    raw, self.registry, self.settings.max_message_bytes
                )
            except Rejected as rejection:
                await self._dead_letter(out, raw, event.key, rejection, source, _headers(event))
                continue
            for row in rows:
                out.sink.add(row, 200)
            if problem is not None:
                await self._dead_letter(out, raw, event.key, problem, source, _headers(event))
            if out.sink.full:
                await out.seal()
        return None

    async def send_ticks(self, topic: Any) -> None:
        """Ask every partition of `topic` to run its periodic work (leader only)."""
        for partition in range(self.settings.partitions):
            await topic.send(value=b"", partition=partition, headers=[(TICK_HEADER, b"1")])


def _batches(stream: faust.StreamT, size: int, within: float) -> AsyncIterator[Sequence[EventT]]:
    """Batches of events that are acknowledged only when the caller acks them."""
    return cast(faust.Stream, stream).noack_take(size, within)


def define_agents(
    app: faust.App, capture_topic: Any, performance_topic: Any, pipeline: Pipeline
) -> None:
    """Register the agents and the timers that tick them on the app."""
    batch, within = pipeline.settings.batch_max_messages, pipeline.settings.batch_max_seconds

    async def run(stream: faust.StreamT, handle: Handler, out: Outbox) -> None:
        """Handle batch after batch; each is acknowledged once durable, in order."""
        async for events in _batches(stream, batch, within):
            after = await handle(events)

            async def finish(events: Sequence[EventT] = events, after: After = after) -> None:
                if after is not None:
                    after()
                for event in events:
                    await stream.ack(event)

            await out.seal(finish)

    @app.agent(capture_topic, name="ingest")
    async def ingest(stream: faust.StreamT) -> None:
        await run(stream, pipeline.handle_capture, pipeline.capture_out)

    @app.agent(pipeline.chunks_topic, name="reassemble")
    async def reassemble(stream: faust.StreamT) -> None:
        await run(stream, pipeline.handle_pieces, pipeline.pieces_out)

    @app.agent(pipeline.stats_topic, name="summarize")
    async def summarize(stream: faust.StreamT) -> None:
        await run(stream, pipeline.handle_stats, pipeline.summary_out)

    @app.agent(performance_topic, name="performance")
    async def performance(stream: faust.StreamT) -> None:
        await run(stream, pipeline.handle_performance, pipeline.performance_out)

    @app.timer(pipeline.settings.chunk_expiry_interval_seconds, on_leader=True)
    async def expiry_ticks() -> None:
        await pipeline.send_ticks(pipeline.chunks_topic)

    @app.timer(pipeline.settings.summary_flush_interval_seconds, on_leader=True)
    async def flush_ticks() -> None:
        await pipeline.send_ticks(pipeline.stats_topic)
