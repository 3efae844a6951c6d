"""Per-session statistics in event-time tumbling windows, as a pure class over a store.

The store is any ``MutableMapping[bytes, bytes]``: a dict in tests, a changelog-backed
Faust table in the worker. One key per (team, session, window start) holds that
window's *parts*. A part is a partial aggregate with a deterministic id (the chunk_id of
the batch that opened it) and the set of chunk_ids it covers, and it is written to
ClickHouse as one row keyed by (team, session, window, part id) with
``version = len(chunk_ids)``, into a ReplacingMergeTree. That gives exactness under
at-least-once delivery:

* a batch already covered by any part of its window (open or closed) is a duplicate;
* a part only grows, so a later write of it replaces the earlier one (higher version);
  a replay after a crash rebuilds the same part from the same ordered input;
* a batch that arrives after its window closed opens a new part (a further partial
  row) instead of touching the closed one, whose row is final;
* closed parts keep their chunk_ids for ``dedup_seconds`` so replays stay duplicates.

A window closes once the partition's event-time watermark (the newest batch start seen)
is ``expiry`` past its end, or when it has been idle for ``expiry`` of wall-clock time.
Open parts with new batches are flushed on every flush tick, so long windows reach
ClickHouse without waiting for their end.
"""

from __future__ import annotations

from collections.abc import Iterator, MutableMapping, Sequence
from dataclasses import dataclass

import msgspec

from streams.models import BatchStats
from streams.stats import NO_URL_TIMESTAMP, merge_segments

MAX_URLS = 500
MAX_BATCHES_PER_PART = 2000  # bounds one changelog record (~100 KB of chunk ids)

_WINDOW = b"w|"
_WATERMARK = b"m|"


class PartAggregate(msgspec.Struct, array_like=True):
    """Partial session statistics over some batches of one window."""

    distinct_id: str
    first_timestamp: int
    last_timestamp: int
    first_url: str
    first_url_timestamp: int
    urls: list[str]
    click_count: int
    keypress_count: int
    mouse_activity_count: int
    console_log_count: int
    console_warn_count: int
    console_error_count: int
    active_segments: list[tuple[int, int]]
    size: int
    event_count: int
    message_count: int
    has_full_snapshot: bool
    window_ids: list[str]
    retention_days: int


class Part(msgspec.Struct, array_like=True):
    part_id: str
    chunk_ids: list[str]
    aggregate: PartAggregate
    updated_at: float
    flushed_version: int = 0
    closed_at: float | None = None

    @property
    def version(self) -> int:
        return len(self.chunk_ids)


class WindowState(msgspec.Struct, array_like=True):
    team_id: int
    session_id: str
    window_start: int
    partition: int
    parts: list[Part]


_encode = msgspec.msgpack.Encoder().encode
_decode_window = msgspec.msgpack.Decoder(WindowState).decode


def aggregate_of(stats: BatchStats) -> PartAggregate:
    s = stats.summary
    return PartAggregate(
        distinct_id=stats.distinct_id,
        first_timestamp=s.first_timestamp,
        last_timestamp=s.last_timestamp,
        first_url=s.first_url,
        first_url_timestamp=s.first_url_timestamp,
        urls=s.urls[:MAX_URLS],
        click_count=s.click_count,
        keypress_count=s.keypress_count,
        mouse_activity_count=s.mouse_activity_count,
        console_log_count=s.console_log_count,
        console_warn_count=s.console_warn_count,
        console_error_count=s.console_error_count,
        active_segments=list(s.active_segments),
        size=stats.size,
        event_count=s.event_count,
        message_count=stats.message_count,
        has_full_snapshot=s.has_full_snapshot,
        window_ids=[stats.window_id] if stats.window_id else [],
        retention_days=stats.retention_days,
    )


def combine(a: PartAggregate, b: PartAggregate) -> PartAggregate:
    """Merge two partial aggregates; commutative and associative (order never matters)."""
    first_url, first_url_ts = min(
        (a.first_url_timestamp, a.first_url), (b.first_url_timestamp, b.first_url)
    )[::-1]
    return PartAggregate(
        distinct_id=min((a.first_timestamp, a.distinct_id), (b.first_timestamp, b.distinct_id))[1],
        first_timestamp=min(a.first_timestamp, b.first_timestamp),
        last_timestamp=max(a.last_timestamp, b.last_timestamp),
        first_url=first_url if first_url_ts != NO_URL_TIMESTAMP else "",
        first_url_timestamp=first_url_ts,
        urls=sorted(set(a.urls) | set(b.urls))[:MAX_URLS],
        click_count=a.click_count + b.click_count,
        keypress_count=a.keypress_count + b.keypress_count,
        mouse_activity_count=a.mouse_activity_count + b.mouse_activity_count,
        console_log_count=a.console_log_count + b.console_log_count,
        console_warn_count=a.console_warn_count + b.console_warn_count,
        console_error_count=a.console_error_count + b.console_error_count,
        active_segments=merge_segments(a.active_segments + b.active_segments),
        size=a.size + b.size,
        event_count=a.event_count + b.event_count,
        message_count=a.message_count + b.message_count,
        has_full_snapshot=a.has_full_snapshot or b.has_full_snapshot,
        window_ids=sorted(set(a.window_ids) | set(b.window_ids)),
        retention_days=max(a.retention_days, b.retention_days),
    )


def _count(window: WindowState, stats: BatchStats, now: float) -> bool:
    """Add one batch to the window's open part (or a new part); False if already in it."""
    if any(stats.chunk_id in part.chunk_ids for part in window.parts):
        return False
    part = window.parts[-1] if window.parts else None
    if part is None or part.closed_at is not None or part.version >= MAX_BATCHES_PER_PART:
        window.parts.append(Part(stats.chunk_id, [stats.chunk_id], aggregate_of(stats), now))
    else:
        part.chunk_ids.append(stats.chunk_id)
        part.aggregate = combine(part.aggregate, aggregate_of(stats))
        part.updated_at = now
    return True


@dataclass(frozen=True, slots=True)
class PartRow:
    """A part to write to ClickHouse, and whether writing it closes it."""

    key: bytes
    team_id: int
    session_id: str
    window_start: int
    part: Part
    close: bool


class SessionWindows:
    """Tumbling event-time windows of per-session partial aggregates."""

    def __init__(
        self,
        store: MutableMapping[bytes, bytes],
        size_ms: int,
        expiry_ms: int,
        dedup_seconds: float,
    ) -> None:
        self.store = store
        self.size_ms = size_ms
        self.expiry_ms = expiry_ms
        self.dedup_seconds = dedup_seconds

    def window_start(self, timestamp_ms: int) -> int:
        return timestamp_ms - timestamp_ms % self.size_ms

    def _key(self, team_id: int, session_id: str, start: int) -> bytes:
        return b"%s%d:%s|%d" % (_WINDOW, team_id, session_id.encode(), start)

    def add(self, stats: BatchStats, partition: int, now: float) -> bool:
        """Count one batch into its window; False if it is already counted there."""
        return self.add_many([stats], partition, now)[0]

    def add_many(self, batches: Sequence[BatchStats], partition: int, now: float) -> list[bool]:
        """Count batches, in order, into their windows; False where a batch is already
        counted. Each window touched is read and written once (one changelog record per
        window, not per batch), and so is the watermark."""
        windows: dict[bytes, WindowState] = {}
        changed: set[bytes] = set()
        counted = []
        for stats in batches:
            start = self.window_start(stats.summary.first_timestamp)
            key = self._key(stats.team_id, stats.session_id, start)
            if key not in windows:
                raw = self.store.get(key)
                windows[key] = (
                    _decode_window(raw)
                    if raw is not None
                    else WindowState(stats.team_id, stats.session_id, start, partition, [])
                )
            fresh = _count(windows[key], stats, now)
            if fresh:
                changed.add(key)
            counted.append(fresh)
        for key in changed:
            self.store[key] = _encode(windows[key])
        starts = [s.summary.first_timestamp for s, c in zip(batches, counted, strict=True) if c]
        if starts:
            self._advance_watermark(partition, max(starts))
        return counted

    def _advance_watermark(self, partition: int, timestamp_ms: int) -> None:
        key = b"%s%d" % (_WATERMARK, partition)
        current = self.store.get(key)
        if current is None or int(current) < timestamp_ms:
            self.store[key] = b"%d" % timestamp_ms

    def watermark(self, partition: int) -> int:
        raw = self.store.get(b"%s%d" % (_WATERMARK, partition))
        return 0 if raw is None else int(raw)

    def _windows(self, partition: int) -> Iterator[tuple[bytes, WindowState]]:
        for key in list(self.store.keys()):
            if key.startswith(_WINDOW):
                raw = self.store.get(key)
                if raw is not None:
                    window = _decode_window(raw)
                    if window.partition == partition:
                        yield key, window

    def due(self, partition: int, now: float) -> list[PartRow]:
        """Parts with batches not yet written, each marked with whether it now closes."""
        watermark = self.watermark(partition)
        rows = []
        for key, window in self._windows(partition):
            ended = watermark >= window.window_start + self.size_ms + self.expiry_ms
            for part in window.parts:
                if part.closed_at is not None:
                    continue
                idle = now - part.updated_at >= self.expiry_ms / 1000
                close = ended or idle
                if close or part.version > part.flushed_version:
                    rows.append(
                        PartRow(
                            key, window.team_id, window.session_id, window.window_start, part, close
                        )
                    )
        return rows

    def flushed(self, rows: list[PartRow], now: float) -> None:
        """Record that these rows are durable; close the parts that were due to close."""
        for row in rows:
            raw = self.store.get(row.key)
            if raw is None:
                continue
            window = _decode_window(raw)
            for part in window.parts:
                if part.part_id == row.part.part_id:
                    part.flushed_version = max(part.flushed_version, row.part.version)
                    if row.close and part.version == row.part.version:
                        part.closed_at = now
            self.store[row.key] = _encode(window)

    def forget(self, partition: int, now: float) -> int:
        """Drop windows whose parts all closed more than dedup_seconds ago."""
        dropped = 0
        for key, window in list(self._windows(partition)):
            closed = [p.closed_at for p in window.parts]
            if all(c is not None and now - c >= self.dedup_seconds for c in closed):
                del self.store[key]
                dropped += 1
        return dropped

    def sessions(self, partition: int) -> dict[str, bool]:
        """Sessions held for this partition, and whether any of their batches has a full
        snapshot: the population of the full-snapshot ratio."""
        held: dict[str, bool] = {}
        for _, window in self._windows(partition):
            key = f"{window.team_id}:{window.session_id}"
            full = any(p.aggregate.has_full_snapshot for p in window.parts)
            held[key] = held.get(key, False) or full
        return held


def part_values(row: PartRow) -> tuple[object, ...]:
    """The part as a tuple in sinks.clickhouse.SUMMARY_COLUMNS order."""
    a = row.part.aggregate
    return (
        row.team_id,
        row.session_id,
        row.window_start,
        row.part.part_id,
        row.part.version,
        a.distinct_id,
        a.first_timestamp,
        a.last_timestamp,
        a.first_url,
        a.first_url_timestamp,
        a.urls,
        a.click_count,
        a.keypress_count,
        a.mouse_activity_count,
        a.console_log_count,
        a.console_warn_count,
        a.console_error_count,
        a.active_segments,
        a.size,
        a.event_count,
        a.message_count,
        a.has_full_snapshot,
        a.window_ids,
        a.retention_days,
    )
