"""Tombstones: what the stages must refuse because it was erased (GDPR article 17).

An erasure request (a row of `session_recording_deletions`, read by
sinks.clickhouse.erasure.tombstones) is remembered here for
REPLAY_ERASURE_TOMBSTONE_DAYS after it was requested, whatever its state, so that data
of an erased session or person which arrives later is dropped, never written. A batch,
piece, statistics record or performance entry of team T is *erased* when

* its session was erased: (T, session_id) was named by a request, or found by one (a
  person's or a date's request lists the sessions it found: later batches of those
  sessions are refused too, even after the moment of a `before` request);
* its person was erased: (T, distinct_id) was named by a `person` request (every
  session of that person, those that have not started yet included);
* it starts before team T's latest `before` moment: its first event timestamp (epoch
  ms) is earlier. Where a stage does not know the first timestamp (a piece of a chunk
  set, before the set is decoded) it passes None and this rule waits for the stage that
  knows it (the decode of the complete set).

:class:`Tombstones` is an immutable value, built whole from the rows of one reload and
swapped whole (readers never see half a reload); the common case, no erasure at all,
costs one attribute test per check. :class:`TombstoneHolder` holds the current value
for every stage of the worker and reloads it through an injected `load` (the worker
passes one reading ClickHouse, streams.app), keeping the last value when a reload
fails. Nothing here does I/O itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

import metrics

log = logging.getLogger(__name__)
Pair = tuple[int, str]
# One row of sinks.clickhouse.erasure.tombstones: team_id, kind, sessions, distinct_id,
# before_ms (0 unless kind is `before`).
TombstoneRow = tuple[int, str, Iterable[str], str, int]


@dataclass(frozen=True, slots=True)
class Tombstones:
    """Erased sessions, persons and per-team `before` moments; checks are O(1)."""

    sessions: frozenset[Pair] = frozenset()
    persons: frozenset[Pair] = frozenset()
    before: Mapping[int, int] = field(default_factory=lambda: MappingProxyType({}))
    empty: bool = True
    careful: frozenset[int] = frozenset()  # teams with a person or a `before` erasure

    @classmethod
    def of(cls, rows: Iterable[TombstoneRow]) -> Tombstones:
        """From the rows of the tombstone query (an unknown kind still erases the
        sessions it lists: erasing more than asked beats writing what was erased)."""
        sessions: set[Pair] = set()
        persons: set[Pair] = set()
        before: dict[int, int] = {}
        for team_id, kind, found, distinct_id, before_ms in rows:
            sessions.update((team_id, session) for session in found if session)
            if kind == "person" and distinct_id:
                persons.add((team_id, distinct_id))
            elif kind == "before" and before_ms > 0:
                before[team_id] = max(before.get(team_id, 0), before_ms)
        empty = not (sessions or persons or before)
        careful = frozenset(before) | {team for team, _ in persons}
        proxy = MappingProxyType(before)
        return cls(frozenset(sessions), frozenset(persons), proxy, empty, careful)

    def erased(
        self, team_id: int, session_id: str, distinct_id: str, first_ms: int | None = None
    ) -> bool:
        """Whether data of this session (and person, starting at `first_ms`, if known)
        was erased."""
        if self.empty:
            return False
        if (team_id, session_id) in self.sessions or (team_id, distinct_id) in self.persons:
            return True
        return first_ms is not None and first_ms < self.before.get(team_id, -(2**63))

    def session_erased(self, team_id: int, session_id: str) -> bool:
        """Whether the session itself was erased (by id, or found by a request)."""
        return not self.empty and (team_id, session_id) in self.sessions

    def needs_person(self, team_id: int) -> bool:
        """Whether deciding for this team needs the distinct id or first timestamp: a
        held set or window is read only then."""
        return team_id in self.careful

    def __len__(self) -> int:
        return len(self.sessions) + len(self.persons) + len(self.before)


NONE = Tombstones()


def _nothing() -> Iterable[TombstoneRow]:
    return ()


class TombstoneHolder:
    """The worker's current Tombstones, shared by every stage, reloaded whole.

    `refresh()` blocks (it runs `load`): call it from a thread (the worker's timer does,
    and so may the erasure executor right after it recorded a request). A value equal to
    the current one is not swapped in, so held state is swept again only when the
    tombstones changed (streams.sweep)."""

    def __init__(self, load: Callable[[], Iterable[TombstoneRow]] = _nothing) -> None:
        self.current: Tombstones = NONE
        self.loaded = False
        self._load = load
        self._lock = threading.Lock()
        self._first = asyncio.Lock()

    def refresh(self) -> bool:
        """Reload; on failure keep the last tombstones (logged and counted)."""
        with self._lock:
            try:
                fresh = Tombstones.of(self._load())
            except Exception as exc:
                metrics.ERASURE_TOMBSTONE_RELOAD_FAILURES.inc()
                log.warning("tombstones not reloaded, keeping the last %d: %s", len(self), exc)
                return False
            if fresh != self.current:
                self.current = fresh
            self.loaded = True
            metrics.ERASURE_TOMBSTONES.set(len(fresh))
            return True

    async def ready(self, retry_seconds: float) -> None:
        """Return once a load has succeeded, loading (in a thread) until one does: the
        agents wait for it, so a restarted worker never writes a late batch of an erased
        session before it knows the erasure."""
        while not self.loaded:
            async with self._first:
                if not self.loaded and not await asyncio.to_thread(self.refresh):
                    await asyncio.sleep(retry_seconds)

    def __len__(self) -> int:
        return len(self.current)


def count_dropped(stage: str, count: int = 1) -> None:
    """Count what a stage dropped as erased (replay_erased_dropped_total{stage})."""
    if count:
        metrics.ERASED_DROPPED.labels(stage).inc(count)
