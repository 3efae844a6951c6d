"""The stages: one per input topic, each mapping one message to what it produces.

A stage's `handle(message, now)` returns an :class:`Output`: rows for its sink,
records to forward, dead letters, batch statistics, and what to do once all of that
is durable. Stages do no I/O and know nothing of Faust; the loop (streams.loop)
applies their outputs, and is the one place that catches what a stage raises.

Each class's `name` is its stage's name (streams.topics.STAGES).

* ``IngestStage`` (input `session_recording_events`): a single-piece batch is decoded
  right here; a piece of a larger set is forwarded, untouched, keyed by team and
  session, so every piece of a set meets on one partition.
* ``ItemsStage`` (input `session_recording_snapshot_item_events`): one `$snapshot_items`
  message is one whole batch, decoded right here (streams.items); no reassembly.
* ``ReassembleStage`` (internal): holds pieces in ``PendingChunks`` until the set is
  complete, decodes it, and expires old sets on ticks.
* ``SummarizeStage`` (internal): counts batch statistics into ``SessionWindows`` and,
  on ticks, hands out the window parts to write.
* ``PerformanceStage`` (input `performance_events_batches`): one row per entry.

Erasure (streams.tombstones): every stage drops what belongs to an erased session or
person (no row, no forward, no letter), counted in replay_erased_dropped_total{stage}.
The decoder checks each decoded batch with its first timestamp (every rule); a piece
of a set, forwarded by ``ingest`` or held by ``reassemble``, is checked without one (the
`before` rule waits for the decode); statistics and window parts with their first
timestamps, performance entries with their own. The ticks also sweep held sets and
windows of erased sessions (streams.sweep; stages `reassemble_held`, `summarize_held`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

import metrics
from streams.decoder import Decoder
from streams.dlq import Rejected
from streams.figures import plausible_figures
from streams.models import CONTENT_ENCODING_HEADER, BatchStats, Chunk, SourceRef, decode_stats
from streams.output import (
    TICK_HEADER,
    Forward,
    Letter,
    Message,
    Original,
    Output,
    Row,
    original_of,
    source_headers,
)
from streams.parts import Tally, part_values
from streams.performance import kept_entries, parse_performance
from streams.reassembly import Outcome, PendingChunks
from streams.sweep import Sweeps, kept_parts, kept_stats, sweep_sets, sweep_windows
from streams.tombstones import TombstoneHolder, count_dropped
from streams.topics import INGEST, ITEMS, PERFORMANCE, REASSEMBLE, SUMMARIZE
from streams.windows import SessionWindows

REASSEMBLE_HELD = f"{REASSEMBLE}_held"  # erased sets swept from PendingChunks (pieces)
SUMMARIZE_HELD = f"{SUMMARIZE}_held"  # erased windows swept from SessionWindows

RECORD_HEADROOM = 1024  # key and headers of a forwarded record
# Items one tick handles per partition at most (~0.2 s of the event loop); the rest are
# handled by the next ticks, so a burst of closing windows never stalls the agents.
TICK_LIMIT = 2000
_TALLY_REJECTIONS = {
    Tally.TEAM_CAP: ("too_many_open_windows", "the team holds too many open windows"),
    Tally.FULL: ("oversized", "every part of the session's window is full"),
}
_part_encoder = msgspec.msgpack.Encoder()


@dataclass
class IngestStage:
    decoder: Decoder
    name: str = INGEST

    def handle(self, message: Message, now: float) -> Output:
        original = original_of(message)
        try:
            chunk = self.decoder.parse(message.value)
            if chunk.chunk_count == 1:
                return self.decoder.decode((chunk,), (original,), now, self.name)
            if self.decoder.piece_erased(chunk, self.name):
                return Output()
            limit = self.decoder.settings.max_record_bytes - RECORD_HEADROOM
            if len(message.value or b"") > limit:
                error = f"a piece of a multi-piece set over {limit} bytes cannot be forwarded"
                raise Rejected("oversized", "parse", error)
        except Rejected as rejection:
            return Output.dead((original,), rejection)
        headers = source_headers(original.source)
        value = message.value or b""
        return Output(forwards=[Forward(chunk.session_key.encode(), value, headers)])


@dataclass
class ItemsStage:
    decoder: Decoder
    name: str = ITEMS

    def handle(self, message: Message, now: float) -> Output:
        original = original_of(message)
        encoding = message.header(CONTENT_ENCODING_HEADER)
        try:
            return self.decoder.decode_items(message.value, encoding, original, now)
        except Rejected as rejection:
            return Output.dead((original,), rejection)


@dataclass
class ReassembleStage:
    decoder: Decoder
    pending: PendingChunks
    name: str = REASSEMBLE
    writing: set[str] = field(default_factory=set)  # complete sets whose row is in flight
    sweeps: Sweeps[str] = field(default_factory=Sweeps)

    def handle(self, message: Message, now: float) -> Output:
        if message.header(TICK_HEADER) is not None:
            return self.tick(message.partition, now)
        original = original_of(message, internal=True)
        try:
            chunk = self.decoder.parse(message.value)
        except Rejected as rejection:
            return Output.dead((original,), rejection)
        if chunk.set_key in self.writing:
            metrics.CHUNK_PIECES.labels(Outcome.DUPLICATE.value).inc()
            return Output()
        if self.decoder.piece_erased(chunk, self.name):
            return Output()
        outcome = self.pending.add(
            chunk.set_key,
            chunk.chunk_index,
            chunk.chunk_count,
            message.value or b"",
            original.source,
            message.partition,
            now,
            chunk.team_id,
        )
        metrics.CHUNK_PIECES.labels(outcome.value).inc()
        if outcome is Outcome.COMPLETE:
            return self._complete(chunk.set_key, now)
        return self._refused(outcome, chunk, original, message.partition, now)

    def _refused(
        self, outcome: Outcome, chunk: Chunk, original: Original, partition: int, now: float
    ) -> Output:
        if outcome is Outcome.MISMATCH:
            error = f"chunk_count {chunk.chunk_count} differs from the set's earlier pieces"
            return Output.dead((original,), Rejected("invalid_chunk", REASSEMBLE, error))
        if outcome is Outcome.TEAM_CAP:
            error = f"team {chunk.team_id} holds {self.pending.max_sets_per_team} open sets"
            return Output.dead((original,), Rejected("too_many_open_sets", REASSEMBLE, error))
        if outcome in (Outcome.OVERSIZED, Outcome.REJECTED):
            held = self.pending.reject(chunk.set_key, chunk.chunk_count, partition, now).pieces
            originals = [Original(piece, None, source) for piece, source in held]
            error = f"the set's pieces pass {self.pending.max_set_bytes} bytes"
            rejection = Rejected("oversized", REASSEMBLE, error)
            return Output.dead([*originals, original], rejection)
        return Output()

    def _complete(self, set_key: str, now: float) -> Output:
        state = self.pending.state(set_key)
        if state is not None:
            metrics.REASSEMBLY_SECONDS.observe(max(0.0, now - state.first_seen))
        origin: list[Original] = []

        def chunks() -> Iterator[Chunk]:
            for piece, source in self.pending.iter_pieces(set_key):
                origin.append(Original(piece, set_key.encode(), source))
                yield self.decoder.parse(piece)

        try:
            out = self.decoder.decode(chunks(), (), now, self.name)
            out.rows = [row._replace(origin=tuple(origin)) for row in out.rows]
        except Rejected as rejection:
            held = [Original(p, set_key.encode(), s) for p, s in self.pending.pieces(set_key)]
            out = Output.dead(held, rejection)
        self.writing.add(set_key)

        def release() -> None:
            self.pending.release(set_key, now)
            self.writing.discard(set_key)

        out.after.append(release)
        return out

    def tick(self, partition: int, now: float) -> Output:
        ttl = self.decoder.settings.chunk_ttl_seconds
        swept = sweep_sets(
            self.pending, self.decoder, self.sweeps, partition, self.writing, TICK_LIMIT
        )
        count_dropped(REASSEMBLE_HELD, swept)
        out = Output()
        expiring = self.pending.expire(partition, now, ttl, self.writing, TICK_LIMIT)
        for expired in expiring:
            metrics.CHUNK_SETS_EXPIRED.inc()
            error = f"{len(expired.pieces)} piece(s) held, set not written after {ttl}s"
            rejection = Rejected("chunk_expired", REASSEMBLE, error)
            key = expired.set_key.encode()
            out.letters += [Letter(Original(p, key, s), rejection) for p, s in expired.pieces]
        sets, held = self.pending.pending()
        metrics.CHUNK_SETS_PENDING.set(sets)
        metrics.CHUNK_PENDING_BYTES.set(held)
        return out


def plausible_stats(stats: BatchStats) -> bool:
    """Whether a statistics record could come from a decoded batch (its topic can be
    written to): a team id that fits, figures in range (streams.figures)."""
    return 0 < stats.team_id < 2**62 and plausible_figures(stats.figures)


@dataclass
class SummarizeStage:
    windows: SessionWindows
    name: str = SUMMARIZE
    tombstones: TombstoneHolder = field(default_factory=TombstoneHolder)
    sweeps: Sweeps[bytes] = field(default_factory=Sweeps)

    def handle(self, message: Message, now: float) -> Output:
        if message.header(TICK_HEADER) is not None:
            return self.tick(message.partition, now)
        original = original_of(message, internal=True)
        try:
            batches = decode_stats(message.value or b"")
        except (msgspec.DecodeError, RecursionError) as exc:
            return Output.dead((original,), Rejected("invalid_event", SUMMARIZE, str(exc)))
        if not all(map(plausible_stats, batches)):
            error = "figures out of range for a batch's statistics"
            return Output.dead((original,), Rejected("invalid_event", SUMMARIZE, error))
        batches = kept_stats(batches, self.tombstones.current, self.name)
        tallies = self.windows.add_many(batches, message.partition, now)
        out = Output()
        for stats, tally in zip(batches, tallies, strict=True):
            metrics.SUMMARY_BATCHES.labels(tally.value).inc()
            if tally in _TALLY_REJECTIONS:
                reason, error = _TALLY_REJECTIONS[tally]
                letter = original._replace(value=_part_encoder.encode([stats]))
                out.letters.append(Letter(letter, Rejected(reason, SUMMARIZE, error)))
        return out

    def tick(self, partition: int, now: float) -> Output:
        """Rows of every part with new batches or due to close; marked once durable.
        Windows of erased sessions are dropped first, unwritten."""
        tombstones = self.tombstones.current
        swept = sweep_windows(self.windows, tombstones, self.sweeps, partition, TICK_LIMIT)
        rows = self.windows.due(partition, now, TICK_LIMIT)
        rows, erased = kept_parts(self.windows, rows, tombstones)
        count_dropped(SUMMARIZE_HELD, swept + erased)
        out = Output()
        for row in rows:
            values = part_values(row)
            if row.part.version > row.part.flushed_version:
                source = SourceRef(f"{SUMMARIZE}:{row.team_id}:{row.session_id}", partition, 0)
                origin = (Original(_part_encoder.encode(values), None, source),)
                out.rows.append(Row(values, 1, origin))
            if row.close:
                metrics.SUMMARY_PARTS_CLOSED.inc()
        full, without = self.windows.session_counts(partition)
        metrics.RECENT_SESSIONS.labels(str(partition), "true").set(full)
        metrics.RECENT_SESSIONS.labels(str(partition), "false").set(without)

        def mark() -> None:
            self.windows.flushed(rows, now)
            self.windows.forget(partition, now, TICK_LIMIT)

        out.after.append(mark)
        return out


@dataclass
class PerformanceStage:
    decoder: Decoder
    name: str = PERFORMANCE

    def handle(self, message: Message, now: float) -> Output:
        original = original_of(message)
        settings = self.decoder.settings
        try:
            rows, problem = parse_performance(
                message.value,
                self.decoder.registry,
                settings.max_message_bytes,
                now * 1000,
                self.decoder.bounds,
            )
        except Rejected as rejection:
            return Output.dead((original,), rejection)
        tombstones = self.decoder.tombstones.current
        if not tombstones.empty:
            kept = kept_entries(rows, tombstones.erased)
            if len(kept) < len(rows):  # its letter would carry erased entries too
                count_dropped(self.name, len(rows) - len(kept))
                rows, problem = kept, None
        out = Output(rows=[Row(values, 200, (original,)) for values in rows])
        if problem is not None:
            out.letters.append(Letter(original, problem))
        return out
