"""Dead letters of erased sessions and persons: Kafka cannot delete one record, so the DLQ
tools (`dlq list`, `dlq replay`) skip them and say how many they skipped.

A letter is attributed as the worker reads its input: the team from the token (through
the team registry; a chunked message's team_id must agree), the session from
``$session_id``/``session_id`` (the data's properties, the value, or PostHog's headers),
the person from ``distinct_id`` (the value, its properties, or the headers). It belongs
to an erasure if its (team, session) is in one's sessions (asked for or found), or its
(team, distinct_id) is a person's erasure. The erasures come from the tombstone query
(sinks.clickhouse.erasure.tombstones), every one ever made: a letter may outlive the
tombstones the workers keep.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

from config.teams import TeamRegistry
from replay_ingest.dlq import Letter
from streams.items import unwrap
from streams.models import CONTENT_ENCODING_HEADER

MAX_DECODED_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Erased:
    """The erased sessions and persons, per team."""

    sessions: frozenset[tuple[int, str]] = frozenset()
    persons: frozenset[tuple[int, str]] = frozenset()

    @classmethod
    def from_tombstones(cls, columns: list[str], rows: Iterable[Sequence[Any]]) -> Erased:
        """From the rows of sinks.clickhouse.erasure.tombstones."""
        sessions: set[tuple[int, str]] = set()
        persons: set[tuple[int, str]] = set()
        for row in rows:
            stone = dict(zip(columns, row, strict=True))
            team = int(stone["team_id"])
            sessions.update((team, str(s)) for s in stone["sessions"])
            if stone["kind"] == "person":
                persons.add((team, str(stone["distinct_id"])))
        return cls(frozenset(sessions), frozenset(persons))

    def covers(self, letter: Letter, registry: TeamRegistry) -> bool:
        """Whether the letter is a session's or a person's that was erased."""
        if not self.sessions and not self.persons:
            return False
        team, session, person = attribute(letter, registry)
        if team is None:
            return False
        return (team, session) in self.sessions or (team, person) in self.persons


def attribute(letter: Letter, registry: TeamRegistry) -> tuple[int | None, str, str]:
    """(team_id or None, session_id, distinct_id) of a letter; "" where unknown."""
    value = _value(letter)
    props = _properties(value)
    heads = letter.headers
    token = _text(value.get("token")) or heads.get("token", "")
    found = registry.team_for_token(token) if token else None
    claimed = value.get("team_id")
    if found is None or (claimed is not None and claimed != found.team_id):
        return None, "", ""
    session = (
        _text(props.get("$session_id"))
        or _text(props.get("session_id"))
        or _text(value.get("session_id"))
        or heads.get("session_id", "")
    )
    person = (
        _text(value.get("distinct_id"))
        or _text(props.get("distinct_id"))
        or heads.get("distinct_id", "")
    )
    return found.team_id, session, person


def _value(letter: Letter) -> dict[str, Any]:
    """The letter's JSON object (unwrapped from gzip or lz4), or {} if it is none."""
    if not letter.value:
        return {}
    encoding = next((v for k, v in letter.raw_headers if k == CONTENT_ENCODING_HEADER), None)
    try:
        value = msgspec.json.decode(unwrap(letter.value, encoding, MAX_DECODED_BYTES))
    except Exception:  # a letter is whatever was refused: unreadable is unattributed
        return {}
    return value if isinstance(value, dict) else {}


def _properties(value: dict[str, Any]) -> dict[str, Any]:
    data = value.get("data")
    try:
        event = msgspec.json.decode(data) if isinstance(data, str) else {}
    except msgspec.DecodeError:
        return {}
    props = event.get("properties") if isinstance(event, dict) else None
    return props if isinstance(props, dict) else {}


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""
