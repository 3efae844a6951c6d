"""Per-session statistics in event-time tumbling windows, as a pure class over a store.

The store is any ``MutableMapping[bytes, bytes]``: a dict in tests, a changelog-backed
Faust table in the worker. One key per (team, session, window start) holds that
window's *parts*. A part is a partial aggregate with a deterministic id (the chunk_id of
the batch that opened it) and the set of batches it covers (64-bit hashes of their
chunk_ids), and it is written to ClickHouse as one row keyed by (team, session, window,
part id) with ``version = number of batches``, into a ReplacingMergeTree. That gives
exactness under at-least-once delivery:

* a batch already covered by any part of its window (open or closed) is a duplicate;
* a part only grows, so a later write of it replaces the earlier one (higher version);
  a replay after a crash rebuilds the same part from the same ordered input;
* a batch that arrives after its window closed opens a new part (a further partial
  row) instead of touching the closed one, whose row is final;
* closed parts keep their batch hashes for ``dedup_seconds`` so replays stay duplicates.

A window closes once its *team's* event-time watermark on the partition (the newest
batch start seen from that team) is ``expiry`` past its end, or when it has been idle
for ``expiry`` of wall-clock time: one team's clock (or a message dated 2099) never
closes another team's windows. Open parts with new batches are flushed on every flush
tick, so long windows reach ClickHouse without waiting for their end.

Bounds, because input is hostile and a window is one changelog record (Kafka refuses
records over 1 MB): a part covers at most MAX_BATCHES_PER_PART batches, a window holds
at most MAX_PARTS_PERWINDOW_PREFIX parts (then a closed part is reopened, and only a window
whose every part is full refuses a batch as ``FULL``), a team
holds at most ``max_windows_per_team`` open windows per partition (``TEAM_CAP``), and an
aggregate keeps at most the caps declared with its figures (sinks.clickhouse.summary;
streams.stats says what is cut).

Ticks cost what is due, not what is held: an in-memory index per partition (windows
with unwritten batches, heaps of the moments windows close or may be forgotten) is
built from the store once, on first use after an assignment, and kept up to date by
every change made through this class.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Iterable, MutableMapping, Sequence

from streams.models import BatchStats
from streams.partitions import PerPartition
from streams.parts import PartRow, Tally, WindowState, count_batch, decode_window, encode_window
from streams.window_index import WINDOW_PREFIX, WindowIndex

_WATERMARK = b"m|"


class SessionWindows:
    """Tumbling event-time windows of per-session partial aggregates."""

    def __init__(
        self,
        store: MutableMapping[bytes, bytes],
        size_ms: int,
        expiry_ms: int,
        dedup_seconds: float,
        max_windows_per_team: int = 1 << 62,
    ) -> None:
        self.store = store
        self.size_ms = size_ms
        self.expiry_ms = expiry_ms
        self.dedup_seconds = dedup_seconds
        self.max_windows_per_team = max_windows_per_team
        self._index = PerPartition(self._scan)

    def window_start(self, timestamp_ms: int) -> int:
        return timestamp_ms - timestamp_ms % self.size_ms

    def _key(self, team_id: int, session_id: str, start: int) -> bytes:
        return b"%s%d:%s|%d" % (WINDOW_PREFIX, team_id, session_id.encode(), start)

    def _end(self, window: WindowState) -> int:
        return window.window_start + self.size_ms + self.expiry_ms

    def add(self, stats: BatchStats, partition: int, now: float) -> bool:
        """Count one batch into its window; False if it is not counted (see Tally)."""
        return self.add_many([stats], partition, now)[0] is Tally.COUNTED

    def add_many(self, batches: Sequence[BatchStats], partition: int, now: float) -> list[Tally]:
        """Count batches, in order, into their windows. Each window touched is read and
        written once (one changelog record per window, not per batch), and so is each
        team's watermark."""
        index = self._index(partition)
        windows: dict[bytes, WindowState] = {}
        tallies = []
        newest: dict[int, int] = {}
        for stats in batches:
            start = self.window_start(stats.figures.min_first_timestamp)
            key = self._key(stats.team_id, stats.session_id, start)
            window = windows.get(key)
            if window is None:
                raw = self.store.get(key)
                if raw is not None:
                    window = decode_window(raw)
                elif index.per_team[stats.team_id] >= self.max_windows_per_team:
                    tallies.append(Tally.TEAM_CAP)
                    continue
                else:
                    window = WindowState(stats.team_id, stats.session_id, start, partition, [])
                index.opened(key, window, self._end(window))
                windows[key] = window
            tally = count_batch(window, stats, now)
            tallies.append(tally)
            if tally is Tally.COUNTED:
                index.dirty.add(key)
                index.touched(key, now)
                index.held(key, stats.figures.has_full_snapshot)
                first = stats.figures.min_first_timestamp
                newest[stats.team_id] = max(newest.get(stats.team_id, first), first)
        for key in index.dirty.intersection(windows):
            self.store[key] = encode_window(windows[key])
        for team_id, timestamp_ms in newest.items():
            self._advance_watermark(partition, team_id, timestamp_ms)
        return tallies

    def _watermark_key(self, partition: int, team_id: int) -> bytes:
        return b"%s%d|%d" % (_WATERMARK, partition, team_id)

    def _advance_watermark(self, partition: int, team_id: int, timestamp_ms: int) -> None:
        key = self._watermark_key(partition, team_id)
        current = self.store.get(key)
        if current is None or int(current) < timestamp_ms:
            self.store[key] = b"%d" % timestamp_ms

    def watermark(self, partition: int, team_id: int) -> int:
        raw = self.store.get(self._watermark_key(partition, team_id))
        return 0 if raw is None else int(raw)

    def _read(self, key: bytes) -> WindowState | None:
        raw = self.store.get(key)
        return None if raw is None else decode_window(raw)

    def _candidates(self, partition: int, now: float, limit: int) -> set[bytes]:
        """At most `limit` windows with unwritten batches, or whose end or idle time has
        come; the rest stay queued for the next tick."""
        index = self._index(partition)
        keys = set(itertools.islice(index.unflushed, limit))
        while index.dirty and len(keys) < limit:
            keys.add(index.dirty.pop())
        for team_id, ends in index.ends.items():
            watermark = self.watermark(partition, team_id)
            while ends and ends[0][0] <= watermark and len(keys) < limit:
                keys.add(heapq.heappop(ends)[1])
        idle_before = now - self.expiry_ms / 1000
        while index.idle and index.idle[0][0] <= idle_before and len(keys) < limit:
            _, key = heapq.heappop(index.idle)
            index.queued_idle.discard(key)
            keys.add(key)
        return keys

    def due(self, partition: int, now: float, limit: int = 1 << 62) -> list[PartRow]:
        """Parts with batches not yet written, each marked with whether it now closes,
        from at most `limit` windows (so that one tick never holds the loop for long)."""
        index = self._index(partition)
        rows = []
        for key in sorted(self._candidates(partition, now, limit)):
            window = self._read(key)
            if window is None:
                continue
            ended = self.watermark(partition, window.team_id) >= self._end(window)
            latest, stays_open, handed = 0.0, False, False
            for part in window.parts:
                if part.closed_at is not None:
                    continue
                latest = max(latest, part.updated_at)
                close = ended or now - part.updated_at >= self.expiry_ms / 1000
                stays_open = stays_open or not close
                if close or part.version > part.flushed_version:
                    handed = True
                    rows.append(
                        PartRow(
                            key, window.team_id, window.session_id, window.window_start, part, close
                        )
                    )
            if handed:
                index.unflushed.add(key)  # handed out again until flushed() says durable
            if not latest:
                index.closed(key)  # every part closed already (a duplicate reopened it)
            elif stays_open:
                index.touched(key, latest)  # look again once it may be idle
        return rows

    def flushed(self, rows: list[PartRow], now: float) -> None:
        """Record that these rows are durable; close the parts that were due to close."""
        for row in rows:
            window = self._read(row.key)
            if window is None:
                continue
            for part in window.parts:
                if part.part_id == row.part.part_id:
                    part.flushed_version = max(part.flushed_version, row.part.version)
                    if row.close and part.version == row.part.version:
                        part.closed_at = now
            self.store[row.key] = encode_window(window)
            index = self._index(window.partition)
            index.unflushed.discard(row.key)
            if all(part.closed_at is not None for part in window.parts):
                index.closed(row.key)
                heapq.heappush(index.gone, (now, row.key))
            elif any(p.version > p.flushed_version for p in window.parts):
                index.dirty.add(row.key)

    def forget(self, partition: int, now: float, limit: int = 1 << 62) -> int:
        """Drop windows whose parts all closed more than dedup_seconds ago (at most
        `limit` of them; the rest on the next call)."""
        index = self._index(partition)
        dropped = 0
        for _ in range(limit):
            if not index.gone or index.gone[0][0] + self.dedup_seconds > now:
                break
            _, key = heapq.heappop(index.gone)
            window = self._read(key)
            if window is None:
                continue
            closed = [part.closed_at for part in window.parts]
            if all(c is not None and now - c >= self.dedup_seconds for c in closed):
                del self.store[key]
                index.dropped(key)
                index.closed(key)
                dropped += 1
        return dropped

    def held(self, partition: int) -> list[bytes]:
        """Keys of every window held for one partition, open or closed."""
        return list(self._index(partition).full)

    def read(self, key: bytes) -> WindowState | None:
        return self._read(key)

    def drop(self, key: bytes) -> None:
        """Remove a window whatever its state, unwritten batches included (an erased
        session's): its parts are never handed out again."""
        window = self._read(key)
        if window is None:
            return
        del self.store[key]
        index = self._index(window.partition)
        index.dropped(key)
        index.closed(key)
        index.dirty.discard(key)
        index.unflushed.discard(key)

    def open_windows(self, partition: int) -> int:
        return len(self._index(partition).teams)

    def session_counts(self, partition: int) -> tuple[int, int]:
        """(sessions held with a full snapshot, without one) on this partition: the
        population of the full-snapshot ratio, kept as running counts."""
        index = self._index(partition)
        return index.sessions_with_full, len(index.windows_of) - index.sessions_with_full

    def forget_indexes(self) -> None:
        """Drop the in-memory indexes (after a rebalance): rebuilt from the store on use."""
        self._index.clear()

    def _scan(self, partition: int) -> WindowIndex:
        """Build one partition's index from the store: the only full pass over its keys."""
        index = WindowIndex()
        for key, window in _windows_of(self.store, partition):
            index.held(key, any(p.aggregate.has_full_snapshot for p in window.parts))
            open_parts = [p for p in window.parts if p.closed_at is None]
            if not open_parts:
                closed = [p.closed_at or 0.0 for p in window.parts]
                heapq.heappush(index.gone, (max(closed, default=0.0), key))
                continue
            index.opened(key, window, self._end(window))
            index.touched(key, max(p.updated_at for p in open_parts))
            if any(p.version > p.flushed_version for p in open_parts):
                index.dirty.add(key)
        return index


def owner_of(key: bytes) -> tuple[int, str]:
    """(team_id, session_id) of a window key (`w|team:session|start`), unread."""
    team, _, rest = key[len(WINDOW_PREFIX) :].partition(b":")
    return int(team), rest.rpartition(b"|")[0].decode()


def _windows_of(
    store: MutableMapping[bytes, bytes], partition: int
) -> Iterable[tuple[bytes, WindowState]]:
    for key in list(store.keys()):
        if key.startswith(WINDOW_PREFIX):
            raw = store.get(key)
            if raw is not None:
                window = decode_window(raw)
                if window.partition == partition:
                    yield key, window
