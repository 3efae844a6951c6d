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

from typing import Any

import msgspec

from config.teams import TeamRegistry
from replay_ingest.dlq import Letter
from streams.items import unwrap
from streams.models import CONTENT_ENCODING_HEADER
from streams.tombstones import Tombstones

MAX_DECODED_BYTES = 64 * 1024 * 1024


def erased(tombstones: Tombstones, letter: Letter, registry: TeamRegistry) -> bool:
    """Whether the letter is of a session or person that was erased (the workers' rule,
    streams.tombstones, over every erasure ever made)."""
    if tombstones.empty:
        return False
    team, session, person = attribute(letter, registry)
    return team is not None and tombstones.erased(team, session, person)


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
