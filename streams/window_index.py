"""Which windows of a partition need attention, kept in memory so that ticks cost what
is due rather than what is held: built from the store once per assignment (see
streams.windows), then kept up to date by every change made through SessionWindows."""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field

from streams.parts import WindowState

WINDOW_PREFIX = b"w|"


@dataclass
class WindowIndex:
    """One partition's windows: what is unwritten, and when each may close or go."""

    teams: dict[bytes, int] = field(default_factory=dict)  # open window -> team
    per_team: Counter[int] = field(default_factory=Counter)
    dirty: set[bytes] = field(default_factory=set)  # windows with unwritten batches
    unflushed: set[bytes] = field(default_factory=set)  # rows handed out, not yet durable
    ends: dict[int, list[tuple[int, bytes]]] = field(default_factory=dict)  # team -> heap
    idle: list[tuple[float, bytes]] = field(default_factory=list)  # (last update, key)
    queued_idle: set[bytes] = field(default_factory=set)
    gone: list[tuple[float, bytes]] = field(default_factory=list)  # (closed at, key)
    full: dict[bytes, bool] = field(default_factory=dict)  # window -> has a full snapshot
    # sessions held, and of them those with a full snapshot: running counts for a gauge
    windows_of: Counter[bytes] = field(default_factory=Counter)  # session -> windows held
    full_windows_of: Counter[bytes] = field(default_factory=Counter)
    sessions_with_full: int = 0

    def held(self, key: bytes, full: bool) -> None:
        """The window is held, with or without a full snapshot (so far)."""
        was = self.full.get(key)
        if was is None:
            self.windows_of[_session_of(key)] += 1
        if full and not was:
            self._full_changed(key, +1)
        self.full[key] = bool(was) or full

    def dropped(self, key: bytes) -> None:
        was = self.full.pop(key, None)
        if was is None:
            return
        if was:
            self._full_changed(key, -1)
        session = _session_of(key)
        self.windows_of[session] -= 1
        if self.windows_of[session] <= 0:
            del self.windows_of[session]

    def _full_changed(self, key: bytes, step: int) -> None:
        session = _session_of(key)
        before = self.full_windows_of[session] > 0
        self.full_windows_of[session] += step
        if self.full_windows_of[session] <= 0:
            del self.full_windows_of[session]
        self.sessions_with_full += (session in self.full_windows_of) - before

    def opened(self, key: bytes, window: WindowState, end: int) -> None:
        if key not in self.teams:
            self.teams[key] = window.team_id
            self.per_team[window.team_id] += 1
            heapq.heappush(self.ends.setdefault(window.team_id, []), (end, key))

    def touched(self, key: bytes, updated_at: float) -> None:
        if key not in self.queued_idle:
            self.queued_idle.add(key)
            heapq.heappush(self.idle, (updated_at, key))

    def closed(self, key: bytes) -> None:
        team = self.teams.pop(key, None)
        if team is not None:
            self.per_team[team] -= 1
            if self.per_team[team] <= 0:
                del self.per_team[team]


def _session_of(key: bytes) -> bytes:
    """`team:session` of a window key (`w|team:session|start`)."""
    return key[len(WINDOW_PREFIX) :].rpartition(b"|")[0]
