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
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass

import msgspec

from streams.models import SourceRef

_STATE = b"s|"
_PIECE = b"p|"


class ChunkSetState(msgspec.Struct, array_like=True):
    """What the store remembers about one chunk set besides its pieces."""

    chunk_count: int
    first_seen: float
    partition: int
    sources: dict[int, SourceRef]
    piece_bytes: int = 0
    done_at: float | None = None


_encode_state = msgspec.msgpack.Encoder().encode
_decode_state = msgspec.msgpack.Decoder(ChunkSetState).decode


class Outcome(enum.Enum):
    STORED = "stored"
    DUPLICATE = "duplicate"
    COMPLETE = "complete"
    MISMATCH = "mismatch"
    ALREADY_DONE = "already_done"


@dataclass(frozen=True, slots=True)
class ExpiredSet:
    """An incomplete set past its TTL: the pieces held, with where each came from."""

    set_key: str
    pieces: list[tuple[bytes, SourceRef]]


def _state_key(set_key: str) -> bytes:
    return _STATE + set_key.encode()


def _piece_key(set_key: str, index: int) -> bytes:
    return b"%s%s|%d" % (_PIECE, set_key.encode(), index)


class PendingChunks:
    """Pieces of multi-piece chunk sets, held until every index has arrived."""

    def __init__(self, store: MutableMapping[bytes, bytes]) -> None:
        self.store = store

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
    ) -> Outcome:
        """Hold one piece; report whether the set is now complete."""
        state = self.state(set_key)
        if state is None:
            state = ChunkSetState(count, now, partition, {})
        elif state.done_at is not None:
            return Outcome.ALREADY_DONE
        elif state.chunk_count != count:
            return Outcome.MISMATCH
        if index in state.sources:
            # a complete set not yet released: its row may never have become durable (a
            # crash, or a write still in flight), so a redelivered piece completes it again
            complete = len(state.sources) == count
            return Outcome.COMPLETE if complete else Outcome.DUPLICATE
        state.sources[index] = source
        state.piece_bytes += len(piece)
        self.store[_piece_key(set_key, index)] = piece
        self.store[_state_key(set_key)] = _encode_state(state)
        return Outcome.COMPLETE if len(state.sources) == count else Outcome.STORED

    def pieces(self, set_key: str) -> list[tuple[bytes, SourceRef]]:
        """The held pieces in index order, each with its source."""
        state = self.state(set_key)
        if state is None:
            return []
        return [
            (self.store[_piece_key(set_key, index)], source)
            for index, source in sorted(state.sources.items())
        ]

    def release(self, set_key: str, now: float) -> None:
        """Mark the set done (first), then drop its pieces. Call once its row is durable."""
        state = self.state(set_key)
        if state is None or state.done_at is not None:
            return
        indexes = list(state.sources)
        self.store[_state_key(set_key)] = _encode_state(
            ChunkSetState(state.chunk_count, state.first_seen, state.partition, {}, 0, now)
        )
        for index in indexes:
            del self.store[_piece_key(set_key, index)]

    def _states(self, partition: int) -> Iterator[tuple[str, ChunkSetState]]:
        for key in list(self.store.keys()):
            if key.startswith(_STATE):
                raw = self.store.get(key)
                if raw is not None:
                    state = _decode_state(raw)
                    if state.partition == partition:
                        yield key[len(_STATE) :].decode(), state

    def expire(self, partition: int, now: float, ttl: float) -> list[ExpiredSet]:
        """Remove incomplete sets (and done marks) of one partition older than the TTL."""
        expired = []
        for set_key, state in list(self._states(partition)):
            if state.done_at is not None:
                if now - state.done_at >= ttl:
                    del self.store[_state_key(set_key)]
            elif len(state.sources) < state.chunk_count and now - state.first_seen >= ttl:
                # (a complete set only waits for its row to be durable: never expire it)
                expired.append(ExpiredSet(set_key, self.pieces(set_key)))
                for index in state.sources:
                    del self.store[_piece_key(set_key, index)]
                del self.store[_state_key(set_key)]
        return expired

    def pending(self) -> tuple[int, int]:
        """(incomplete sets, bytes held) over every partition in this store."""
        sets = held = 0
        for key in list(self.store.keys()):
            if key.startswith(_STATE):
                raw = self.store.get(key)
                if raw is not None:
                    state = _decode_state(raw)
                    if state.done_at is None:
                        sets += 1
                        held += state.piece_bytes
        return sets, held
