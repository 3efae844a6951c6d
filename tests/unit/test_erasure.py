"""Erasure's pure parts: what a request may be, its row and proof, the statements, the
key prefix of a session's objects, and which dead letters belong to an erasure (the
executor on the real stack: tests/e2e/test_erasure.py)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.teams import Team, TeamRegistry
from erasure.execute import _session_prefix
from erasure.request import MAX_SESSIONS, InvalidRequest, new_request
from replay_ingest.dlq import Letter
from replay_ingest.dlq_erased import attribute, erased
from sinks.clickhouse import erasure as statements
from sinks.clickhouse.schema import DELETIONS_TABLE
from sinks.ids import is_safe_id
from sinks.s3_keys import part_key, session_key
from streams.tombstones import Tombstones
from tests.builders import capture, performance_message


@pytest.mark.parametrize(
    "asked",
    [
        {},
        {"session_ids": ["a"], "distinct_id": "d"},
        {"session_ids": []},
        {"session_ids": "abc"},
        {"session_ids": ["../etc"]},
        {"session_ids": ["a"] * (MAX_SESSIONS + 1)},
        {"distinct_id": ""},
        {"distinct_id": 5},
        {"distinct_id": "x" * 1001},
        {"before": "yesterday"},
        {"before": "1800-01-01"},
        {"before": 1700000000},
        {"session_ids": ["a"], "team_id": 2},
    ],
)
def test_invalid_requests_are_refused(asked: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest):
        new_request(1, asked, "test")


def test_a_request_says_what_was_asked() -> None:
    sessions = new_request(1, {"session_ids": ["s1", "s2", "s1"]}, "api")
    assert (sessions.kind, sessions.session_ids) == ("session", ("s1", "s2"))
    assert sessions.state == "requested"
    person = new_request(1, {"distinct_id": "user 1 ü"}, "api")
    assert (person.kind, person.person) == ("person", "user 1 ü")
    before = new_request(1, {"before": "2026-01-01"}, "api")
    assert before.before_ms == int(datetime(2026, 1, 1, tzinfo=UTC).timestamp() * 1000)
    assert before.person is None
    assert len({sessions.deletion_id, person.deletion_id, before.deletion_id}) == 3


def test_each_version_is_later_and_the_row_round_trips() -> None:
    first = new_request(3, {"distinct_id": "d"}, "cli:me")
    second = first.next(state="running", sessions=("s",), removed={"t": 2})
    assert second.version_ms > first.version_ms
    insert = second.insert()
    assert insert.table == DELETIONS_TABLE
    row = dict(zip(insert.columns, insert.rows[0], strict=True))
    assert row["state"] == "running" and row["removed"] == {"t": 2}
    proof = second.proof()
    assert proof["completed_at"] is None and proof["distinct_id"] == "d"
    assert proof["before"] is None and proof["sessions"] == ["s"]


def test_statements_bind_every_value_and_delete_only_session_tables() -> None:
    query = statements.delete_sessions("performance_events", 1, ["s'; DROP"], "d")
    assert "s'; DROP" not in query.sql and query.parameters["sessions"] == ["s'; DROP"]
    assert query.settings["lightweight_deletes_sync"] == 2
    assert query.sql.startswith("DELETE FROM performance_events WHERE")
    with pytest.raises(ValueError):
        statements.delete_sessions(DELETIONS_TABLE, 1, ["s"])
    counts = statements.tier_counts(1, ["s"])
    assert all(f"AS {t}" in counts.sql for t in statements.SESSION_TABLES)
    assert counts.parameters["person"] is False
    for made in (statements.erased(1, "s"), statements.sessions_of_person(1, "d")):
        assert "{" in made.sql and made.parameters


def test_every_object_of_a_session_shares_the_prefix() -> None:
    base = session_key("rec", 1, "sess-1", datetime(2026, 1, 2, tzinfo=UTC))
    prefix = _session_prefix(base)
    assert prefix == "rec/v1/team_id=1/date=2026-01-02/session_id=sess-1."
    assert _session_prefix(part_key(base, 3)) == prefix
    assert part_key(base, 3).startswith(prefix)
    other = session_key("rec", 1, "sess-10", datetime(2026, 1, 2, tzinfo=UTC))
    assert not other.startswith(prefix)  # the dot ends the id


TEAMS = [Team(1, "token-1"), Team(2, "token-2")]
REGISTRY = TeamRegistry({t.token: t for t in TEAMS}, {t.team_id: t for t in TEAMS})


def letter(value: bytes | None, **headers: str) -> Letter:
    raw = [(k, v.encode()) for k, v in headers.items()]
    return Letter("t_dlq", 0, 1, 0, None, value, dict(headers), raw)


def test_letters_are_attributed_as_the_worker_reads_them() -> None:
    chunked = letter(capture(session_id="s1", distinct_id="d1"))
    assert attribute(chunked, REGISTRY) == (1, "s1", "d1")
    spoofed = letter(capture(session_id="s1", team_id=2))  # token-1 claims team 2
    assert attribute(spoofed, REGISTRY)[0] is None
    perf = letter(
        performance_message(session_id="s2", distinct_id="d2", token="token-2", team_id=2)
    )
    assert attribute(perf, REGISTRY) == (2, "s2", "d2")
    unreadable = letter(b"\x00garbage", token="token-1", session_id="s3", distinct_id="d3")
    assert attribute(unreadable, REGISTRY) == (1, "s3", "d3")
    assert attribute(letter(b"{}", token="nope"), REGISTRY)[0] is None


def test_erased_covers_sessions_and_persons_of_their_team_only() -> None:
    stones = Tombstones.of([(1, "session", ["s1"], "", 0), (1, "person", ["s9"], "d1", 0)])
    assert erased(stones, letter(capture(session_id="s1", distinct_id="x")), REGISTRY)
    assert erased(stones, letter(capture(session_id="s2", distinct_id="d1")), REGISTRY)
    assert not erased(stones, letter(capture(session_id="s2", distinct_id="d2")), REGISTRY)
    other_team = capture(session_id="s1", token="token-2", team_id=2)
    assert not erased(stones, letter(other_team), REGISTRY)
    assert not erased(Tombstones(), letter(capture(session_id="s1")), REGISTRY)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=12,
)


@given(
    st.dictionaries(
        st.sampled_from(["session_ids", "distinct_id", "before", "team_id", "x"]), _JSON
    )
    | _JSON
)
def test_any_body_is_a_valid_request_or_refused(asked: Any) -> None:
    """Whatever a client sends, the request is refused (400) or exactly one kind with
    safe ids; nothing else is raised."""
    try:
        request = new_request(1, asked, "api")
    except InvalidRequest:
        return
    assert request.kind in ("session", "person", "before")
    assert all(is_safe_id(session) for session in request.session_ids)
    assert request.team_id == 1 and request.state == "requested"
