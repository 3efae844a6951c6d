"""Sweeping the state the stages hold (chunk sets waiting for pieces, open summary
windows) of sessions erased since (streams.tombstones), so that nothing of an erased
session stays in the changelog-backed tables.

The write paths check the tombstones themselves (a complete set is decoded and
checked, a due window part is checked before it is written), so a sweep is about what
is *held*, and its work is bounded: when the tombstones change, each partition's held
keys are listed once (an in-memory list of the index, no store scan), then every tick
checks at most `limit` of them. A key is decided from itself (team and session are in
it) and read only for a team with a person or `before` erasure: a held set's first
piece gives its distinct id (its first timestamp is unknown until it is decoded, so the
`before` rule waits for that), a window's parts give theirs and their first timestamps
(a window holding any batch that starts before the moment is dropped whole).
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from sinks.clickhouse.summary import SessionFigures
from streams.decoder import Decoder
from streams.dlq import Rejected
from streams.models import BatchStats
from streams.parts import PartRow
from streams.reassembly import PendingChunks
from streams.tombstones import Tombstones, count_dropped
from streams.windows import SessionWindows, owner_of

K = TypeVar("K")


@dataclass
class Sweeps(Generic[K]):
    """Per partition, the held keys still to check against the tombstones they were
    listed for: each tick takes at most `limit`, and a partition is listed again only
    when the tombstones changed (a new value: streams.tombstones.TombstoneHolder swaps
    only on change) or after clear() (a rebalance)."""

    _swept: dict[int, Tombstones] = field(default_factory=dict)
    _todo: dict[int, list[K]] = field(default_factory=dict)

    def take(
        self, partition: int, tombstones: Tombstones, keys: Callable[[], Iterable[K]], limit: int
    ) -> list[K]:
        if tombstones.empty:
            self._todo.pop(partition, None)
            self._swept[partition] = tombstones
            return []
        if self._swept.get(partition) is not tombstones:
            self._swept[partition] = tombstones
            self._todo[partition] = list(keys())
        todo = self._todo.get(partition, [])
        taken = todo[-limit:]
        del todo[-limit:]
        return taken

    def clear(self) -> None:
        self._swept.clear()
        self._todo.clear()


def sweep_sets(
    pending: PendingChunks,
    decoder: Decoder,
    sweeps: Sweeps[str],
    partition: int,
    keep: Container[str],
    limit: int,
) -> int:
    """Drop the open sets of erased sessions (not those in `keep`, whose row is in
    flight); returns the pieces dropped."""
    tombstones = decoder.tombstones.current
    keys = sweeps.take(partition, tombstones, lambda: pending.open_sets(partition), limit)
    dropped = 0
    for set_key in keys:
        if set_key not in keep and _set_erased(pending, decoder, tombstones, set_key):
            removed = pending.drop(set_key)
            dropped += len(removed.pieces) if removed is not None else 0
    return dropped


def _set_erased(
    pending: PendingChunks, decoder: Decoder, tombstones: Tombstones, set_key: str
) -> bool:
    team, session, _ = set_key.split(":", 2)  # ids hold no ':' (sinks.ids)
    team_id = int(team)
    if tombstones.session_erased(team_id, session):
        return True
    if not tombstones.needs_person(team_id):
        return False
    for piece, _source in pending.iter_pieces(set_key):
        try:
            chunk = decoder.parse(piece)
        except Rejected:
            continue  # (a held piece parsed once; this cannot happen unless it changed)
        return tombstones.erased(team_id, session, chunk.distinct_id)
    return False


def sweep_windows(
    windows: SessionWindows,
    tombstones: Tombstones,
    sweeps: Sweeps[bytes],
    partition: int,
    limit: int,
) -> int:
    """Drop the windows (open or closed) of erased sessions; returns how many."""
    keys = sweeps.take(partition, tombstones, lambda: windows.held(partition), limit)
    dropped = 0
    for key in keys:
        team_id, session = owner_of(key)
        if tombstones.session_erased(team_id, session) or (
            tombstones.needs_person(team_id) and _window_erased(windows, tombstones, key)
        ):
            windows.drop(key)
            dropped += 1
    return dropped


def _window_erased(windows: SessionWindows, tombstones: Tombstones, key: bytes) -> bool:
    window = windows.read(key)
    if window is None:
        return False
    return any(
        _erased(tombstones, window.team_id, window.session_id, part.aggregate)
        for part in window.parts
    )


def _erased(tombstones: Tombstones, team_id: int, session_id: str, figures: SessionFigures) -> bool:
    """Statistics of a session (a batch's, a part's): person and start decide too."""
    distinct_id, first_ms = figures.distinct_id, figures.min_first_timestamp
    return tombstones.erased(team_id, session_id, distinct_id, first_ms)


def kept_stats(batches: list[BatchStats], tombstones: Tombstones, stage: str) -> list[BatchStats]:
    """The batches' statistics not erased (the others counted for `stage`)."""
    if tombstones.empty:
        return batches
    kept = [b for b in batches if not _erased(tombstones, b.team_id, b.session_id, b.figures)]
    count_dropped(stage, len(batches) - len(kept))
    return kept


def kept_parts(
    windows: SessionWindows, rows: list[PartRow], tombstones: Tombstones
) -> tuple[list[PartRow], int]:
    """The due parts not erased, and how many windows were dropped (unwritten) because
    a part of theirs is: a window the sweep has not reached yet is never written."""
    if tombstones.empty:
        return rows, 0
    erased = {
        row.key
        for row in rows
        if _erased(tombstones, row.team_id, row.session_id, row.part.aggregate)
    }
    for key in erased:
        windows.drop(key)
    return [row for row in rows if row.key not in erased], len(erased)
