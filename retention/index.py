"""The archive index, as readers and the spill see it: which parts hold a session."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sinks.clickhouse.queries import Query, archive_entry, archive_parts

# Runs one read: column names and rows. A client of the caller's (the spill's, a web
# view's thread), or the CLI's path through the worker while it owns chDB.
RunQuery = Callable[[Query], tuple[list[str], Sequence[Sequence[Any]]]]


@dataclass(frozen=True, slots=True)
class IndexEntry:
    state: str
    key: str
    bytes: int
    etag: str


def index_entry(run: RunQuery, team_id: int, session_id: str) -> IndexEntry | None:
    """The session's row in the archive index (written after its first part's row)."""
    _, rows = run(archive_entry(team_id, session_id))
    return (
        IndexEntry(str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), str(rows[0][3]))
        if rows
        else None
    )


@dataclass(frozen=True, slots=True)
class Part:
    part: int
    state: str
    key: str
    bytes: int
    etag: str
    sha256: str
    event_count: int


def parts_of(run: RunQuery, team_id: int, session_id: str) -> list[Part]:
    """The session's indexed parts in order (a part's latest state: complete wins)."""
    _, rows = run(archive_parts(team_id, session_id))
    return [
        Part(int(p), str(s), str(k), int(b), str(e), str(h), int(n)) for p, s, k, b, e, h, n in rows
    ]


def archived_parts(run: RunQuery, team_id: int, session_id: str) -> list[Part]:
    """Parts for readers: none until the session row exists (then the parts table does;
    a part indexed before its session row has all its raw rows still in place)."""
    if index_entry(run, team_id, session_id) is None:
        return []
    return parts_of(run, team_id, session_id)
