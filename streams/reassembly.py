"""Chunk reassembly as a small pure class over a key-value store.

The store is any ``MutableMapping[bytes, bytes]``: a dict in tests, the changelog-backed
Faust table in the worker. One store holds both the per-set state and every piece,
each under its own key, so that

* no value (hence no changelog record) is larger than one input piece, and
* the state of a set and its pieces share a changelog partition, which keeps their
  writes in order: when a piece's tombstone is durable, the set's "done" mark is too.

A set is completed in two steps. :meth:`add` reports COMPLETE but changes nothing, and
only :meth:`release`, called once the row is durable downstream, marks the set done and
deletes its pieces. A crash in between re-delivers pieces of the set, any of which
completes it again: at-least-once, with an idempotent sink. "Done" marks outlive the set by the
TTL so that late duplicates of a finished set are recognised instead of starting a new
set that could only expire.

Input is hostile, so what a set may hold is bounded: a set whose held bytes would pass
``max_set_bytes`` is dropped at once (every piece it held is handed back, to be
dead-lettered) and remembered as rejected, so that its later pieces are refused too;
and a team may hold at most ``max_sets_per_team`` open sets per partition.

Periodic expiry costs what is due, not what is held: an in-memory index per partition
(open sets per team, a heap of deadlines) is built from the store once, on first use
after an assignment, and kept up to date by every change made through this class.
"""

from __future__ import annotations

import enum
import heapq
from collections import Counter
from collections.abc import Container, Iterator, MutableMapping
from dataclasses import dataclass, field

import msgspec

from streams.models import SourceRef
from streams.partitions import PerPartition

_STATE = b"s|"
_PIECE = b"p|"


class ChunkSetState(msgspec.Struct, array_like=True):
    """What the store remembers about one chunk set besides its pieces.

    Stored in a changelog as a msgpack array: field order is the wire format. Append
    new fields with defaults at the end; never reorder or remove one.
    """

    chunk_count: int
    first_seen: float
    partition: int
    sources: dict[int, SourceRef]
    piece_bytes: int = 0
    done_at: float | None = None
    rejected: bool = False  # dropped as oversized: later pieces are refused too
    team_id: int = 0


_encode_state = msgspec.msgpack.Encoder().encode
_decode_state = msgspec.msgpack.Decoder(ChunkSetState).decode


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    COMPLETE = "complete"
    MISMATCH = "mismatch"
    ALREADY_DONE = "already_done"
    OVERSIZED = "oversized"  # the set passed its byte bound: dropped, pieces handed back
    REJECTED = "rejected"  # a piece of a set dropped earlier
    TEAM_CAP = "team_cap"  # the team holds too many open sets on this partition


@dataclass(frozen=True, slots=True)
class ExpiredSet:
    """An incomplete set past its TTL (or over its bound): the pieces held, with sources."""

    set_key: str
    pieces: list[tuple[bytes, SourceRef]]


@dataclass
class _Index:
    """One partition's open sets, per team, and the moments their state is next due."""

    open: dict[str, int] = field(default_factory=dict)  # set_key -> team_id
    held_bytes: dict[str, int] = field(default_factory=dict)
    total_bytes: int = 0
    per_team: Counter[int] = field(default_factory=Counter)
    due: list[tuple[float, str]] = field(default_factory=list)  # (since, set_key) heap

    def hold(self, set_key: str, nbytes: int) -> None:
        self.total_bytes += nbytes - self.held_bytes.get(set_key, 0)
        self.held_bytes[set_key] = nbytes

    def opened(self, set_key: str, team_id: int, since: float) -> None:
        self.open[set_key] = team_id
        self.per_team[team_id] += 1
        heapq.heappush(self.due, (since, set_key))

    def closed(self, set_key: str) -> None:
        team = self.open.pop(set_key, None)
        self.total_bytes -= self.held_bytes.pop(set_key, 0)
        if team is not None:
            self.per_team[team] -= 1
            if self.per_team[team] <= 0:
                del self.per_team[team]


def _state_key(set_key: str) -> bytes:
    return _STATE + set_key.encode()


def _piece_key(set_key: str, index: int) -> bytes:
    return b"%s%s|%d" % (_PIECE, set_key.encode(), index)


class PendingChunks:
    """Pieces of multi-piece chunk sets, held until every index has arrived."""

    def __init__(
        self,
        store: MutableMapping[bytes, bytes],
        max_set_bytes: int = 1 << 62,
        max_sets_per_team: int = 1 << 62,
    ) -> None:
        self.store = store
        self.max_set_bytes = max_set_bytes
        self.max_sets_per_team = max_sets_per_team
        self._index = PerPartition(self._scan)

    def state(self, set_key: str) -> ChunkSetState | None:
        raw = self.store.get(_state_key(set_key))
        return None if raw is None else _decode_state(raw)

    def add(
        self,
        set_key: str,
        index: int,
        count: int,
        piece: bytes,
        source: SourceRef,
        partition: int,
        now: float,
        team_id: int = 0,
    ) -> Outcome:
        """Hold one piece; report whether the set is now complete (or why not)."""
        state = self.state(set_key)
        fresh = state is None
        if state is None:
            if self._index(partition).per_team[team_id] >= self.max_sets_per_team:  # (new set)
                return Outcome.TEAM_CAP
            state = ChunkSetState(count, now, partition, {}, team_id=team_id)
        elif state.rejected:
            return Outcome.REJECTED
        elif state.done_at is not None:
            return Outcome.ALREADY_DONE
        elif state.chunk_count != count:
            return Outcome.MISMATCH
        if index in state.sources:
            # a complete set not yet released: its row may never have become durable (a
            # crash, or a write still in flight), so a redelivered piece completes it again
            complete = len(state.sources) == count
            return Outcome.COMPLETE if complete else Outcome.DUPLICATE
        if state.piece_bytes + len(piece) > self.max_set_bytes:
            return Outcome.OVERSIZED
        if fresh:
            self._index(state.partition).opened(set_key, team_id, now)
        state.sources[index] = source
        state.piece_bytes += len(piece)
        self._index(state.partition).hold(set_key, state.piece_bytes)
        self.store[_piece_key(set_key, index)] = piece
        self.store[_state_key(set_key)] = _encode_state(state)
        return Outcome.COMPLETE if len(state.sources) == count else Outcome.STORED

    def pieces(self, set_key: str) -> list[tuple[bytes, SourceRef]]:
        """The held pieces in index order, each with its source."""
        return list(self.iter_pieces(set_key))

    def iter_pieces(self, set_key: str) -> Iterator[tuple[bytes, SourceRef]]:
        """The held pieces in index order, read one at a time."""
        state = self.state(set_key)
        if state is None:
            return
        for index, source in sorted(state.sources.items()):
            yield self.store[_piece_key(set_key, index)], source

    def release(self, set_key: str, now: float) -> None:
        """Mark the set done (first), then drop its pieces. Call once its row is durable."""
        state = self.state(set_key)
        if state is None or state.done_at is not None:
            return
        self._finish(set_key, state, now, rejected=False)

    def reject(self, set_key: str, count: int, partition: int, now: float) -> ExpiredSet:
        """Drop a set over its bound: its pieces are handed back, later ones refused."""
        state = self.state(set_key)
        if state is not None and state.done_at is not None:
            return ExpiredSet(set_key, [])
        if state is None:
            state = ChunkSetState(count, now, partition, {})
        dropped = ExpiredSet(set_key, self.pieces(set_key))
        self._finish(set_key, state, now, rejected=True)
        return dropped

    def _finish(self, set_key: str, state: ChunkSetState, now: float, *, rejected: bool) -> None:
        done = ChunkSetState(
            state.chunk_count,
            state.first_seen,
            state.partition,
            {},
            0,
            now,
            rejected,
            state.team_id,
        )
        self.store[_state_key(set_key)] = _encode_state(done)
        for piece in state.sources:
            del self.store[_piece_key(set_key, piece)]
        index = self._index(state.partition)
        index.closed(set_key)
        heapq.heappush(index.due, (now, set_key))

    def expire(
        self,
        partition: int,
        now: float,
        ttl: float,
        keep: Container[str] = (),
        limit: int = 1 << 62,
    ) -> list[ExpiredSet]:
        """Remove sets (and done marks) of one partition older than the TTL, except those
        in `keep` (complete sets whose row is on its way). A complete set still held
        after the TTL lost its row (its decode failed unexpectedly): its pieces go too.

        Pops only the deadlines that have passed, at most `limit` of them (the rest wait
        for the next tick, so one tick never holds the event loop for long)."""
        expired = []
        index = self._index(partition)
        for _ in range(limit):
            if not index.due or index.due[0][0] + ttl > now:
                break
            since, set_key = heapq.heappop(index.due)
            state = self.state(set_key)
            if state is None or state.partition != partition:
                continue
            if state.done_at is not None:
                if since >= state.done_at:  # (older entries are of an earlier phase)
                    del self.store[_state_key(set_key)]
            elif since < state.first_seen:
                continue  # an entry of an earlier set under the same key
            elif set_key in keep:
                heapq.heappush(index.due, (now, set_key))  # look again a TTL later
            else:
                expired.append(self._remove(set_key, state))
        return expired

    def open_sets(self, partition: int) -> list[str]:
        """The sets of one partition still waiting for pieces."""
        return list(self._index(partition).open)

    def drop(self, set_key: str) -> ExpiredSet | None:
        """Remove an open set and every piece it holds (an erased session's); None if
        it is not open."""
        state = self.state(set_key)
        if state is None or state.done_at is not None:
            return None
        return self._remove(set_key, state)

    def _remove(self, set_key: str, state: ChunkSetState) -> ExpiredSet:
        removed = ExpiredSet(set_key, self.pieces(set_key))
        for piece in state.sources:
            del self.store[_piece_key(set_key, piece)]
        del self.store[_state_key(set_key)]
        self._index(state.partition).closed(set_key)
        return removed

    def pending(self) -> tuple[int, int]:
        """(open sets, bytes held) over the partitions indexed so far."""
        sets = sum(len(index.open) for index in self._index.built())
        held = sum(index.total_bytes for index in self._index.built())
        return sets, held

    def forget_indexes(self) -> None:
        """Drop the in-memory indexes (after a rebalance): rebuilt from the store on use."""
        self._index.clear()

    def _scan(self, partition: int) -> _Index:
        """Build one partition's index from the store: the only full pass over its keys."""
        index = _Index()
        for key in list(self.store.keys()):
            if not key.startswith(_STATE):
                continue
            raw = self.store.get(key)
            state = None if raw is None else _decode_state(raw)
            if state is None or state.partition != partition:
                continue
            set_key = key[len(_STATE) :].decode()
            if state.done_at is not None:
                heapq.heappush(index.due, (state.done_at, set_key))
            else:
                index.opened(set_key, state.team_id, state.first_seen)
                index.hold(set_key, state.piece_bytes)
        return index
