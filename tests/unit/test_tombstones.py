"""The erasure tombstones (streams.tombstones) and the sweeps of held state
(streams.sweep.Sweeps): checks agree with a plain reading of the requests, whatever
the requests; reloads swap whole values, keep the last one on failure, and make the
agents wait for a first load."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

import pytest
from hypothesis import given
from hypothesis import strategies as st

import metrics
from streams.sweep import Sweeps
from streams.tombstones import NONE, TombstoneHolder, TombstoneRow, Tombstones
from tests import builders

TEAMS = st.integers(1, 3)
IDS = st.sampled_from(["a", "b", "c", "d"])
MOMENTS = st.integers(0, 100)
ROWS = st.lists(
    st.builds(
        builders.erasure_row,
        team_id=TEAMS,
        kind=st.sampled_from(["session", "person", "before", "unknown"]),
        sessions=st.lists(IDS, max_size=3).map(tuple),
        distinct_id=st.sampled_from(["", "p", "q"]),
        before_ms=MOMENTS,
    ),
    max_size=8,
)
QUERY = st.tuples(TEAMS, IDS, st.sampled_from(["p", "q", "r"]), st.none() | MOMENTS)


def reference(
    rows: Iterable[TombstoneRow], team: int, session: str, person: str, first: int | None
) -> bool:
    """The semantics read straight off the requests, one by one."""
    for team_id, kind, sessions, distinct_id, before_ms in rows:
        if team_id != team:
            continue
        if session in sessions:
            return True
        if kind == "person" and distinct_id and distinct_id == person:
            return True
        if kind == "before" and first is not None and first < before_ms:
            return True
    return False


@given(ROWS, st.lists(QUERY, max_size=20))
def test_a_check_says_what_the_requests_say(
    rows: list[TombstoneRow], queries: list[tuple[int, str, str, int | None]]
) -> None:
    tombstones = Tombstones.of(rows)
    for team, session, person, first in queries:
        expected = reference(rows, team, session, person, first)
        assert tombstones.erased(team, session, person, first) is expected
        assert tombstones.session_erased(team, session) is any(
            r[0] == team and session in r[2] for r in rows
        )


@given(ROWS)
def test_the_order_of_the_requests_does_not_matter(rows: list[TombstoneRow]) -> None:
    assert Tombstones.of(rows) == Tombstones.of(reversed(rows))


@given(QUERY)
def test_no_erasure_erases_nothing(query: tuple[int, str, str, int | None]) -> None:
    for empty in (NONE, Tombstones.of([]), Tombstones.of([builders.erasure_row(sessions=())])):
        assert empty.empty and not empty.erased(*query)
        assert not empty.needs_person(query[0])


def test_only_teams_with_a_person_or_a_date_need_more_than_the_session() -> None:
    tombstones = Tombstones.of(
        [
            builders.erasure_row(1, "session", ("s",)),
            builders.erasure_row(2, "person", ("s2",), distinct_id="p"),
            builders.erasure_row(3, "before", before_ms=50),
        ]
    )
    assert [tombstones.needs_person(team) for team in (1, 2, 3, 4)] == [False, True, True, False]
    assert tombstones.erased(3, "x", "y", 49) and not tombstones.erased(3, "x", "y", 50)
    assert not tombstones.erased(3, "x", "y"), "no first timestamp: the date waits"
    assert tombstones.erased(2, "s2", "someone-else"), "a session the request found"
    assert len(tombstones) == 4


def failures() -> float:
    value = metrics.REGISTRY.get_sample_value("replay_erasure_tombstone_reload_failures_total")
    return value or 0.0


def test_a_reload_swaps_only_a_changed_value_and_keeps_the_last_on_failure() -> None:
    answers: list[list[TombstoneRow] | Exception] = [
        [builders.erasure_row(1, "session", ("s",))],
        [builders.erasure_row(1, "session", ("s",))],
        RuntimeError("ClickHouse is away"),
        [],
    ]

    def load() -> list[TombstoneRow]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    holder = TombstoneHolder(load)
    assert holder.current is NONE and not holder.loaded
    assert holder.refresh() and holder.current.erased(1, "s", "p")
    first = holder.current
    assert holder.refresh() and holder.current is first, "equal: not swapped"
    before = failures()
    assert not holder.refresh()
    assert holder.current is first and failures() == before + 1
    assert metrics.REGISTRY.get_sample_value("replay_erasure_tombstones") == 1
    assert holder.refresh() and holder.current.empty
    assert metrics.REGISTRY.get_sample_value("replay_erasure_tombstones") == 0


def test_the_agents_wait_until_a_first_load_succeeds() -> None:
    calls: list[int] = []

    def load() -> list[TombstoneRow]:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        return [builders.erasure_row(1, "session", ("s",))]

    holder = TombstoneHolder(load)

    async def agents() -> None:
        await asyncio.gather(*(holder.ready(0.001) for _ in range(4)))

    asyncio.run(agents())
    assert holder.loaded and holder.current.erased(1, "s", "p")
    assert len(calls) == 3, "the agents share one load, retried until it succeeds"


@pytest.mark.parametrize("limit", [1, 2, 5])
def test_a_sweep_lists_a_partition_once_per_change_and_takes_a_bounded_share(limit: int) -> None:
    sweeps: Sweeps[int] = Sweeps()
    listed: list[int] = []

    def keys() -> list[int]:
        listed.append(1)
        return list(range(5))

    one = Tombstones.of([builders.erasure_row(1, "session", ("s",))])
    taken: list[int] = []
    for _ in range(10):
        share = sweeps.take(0, one, keys, limit)
        assert len(share) <= limit
        taken += share
    assert sorted(taken) == list(range(5)) and len(listed) == 1
    two = Tombstones.of([builders.erasure_row(1, "session", ("t",))])
    assert sweeps.take(0, two, keys, limit) and len(listed) == 2, "new tombstones: listed again"
    assert sweeps.take(0, NONE, keys, limit) == [] and len(listed) == 2, "none: nothing to do"
    sweeps.clear()
    assert sweeps.take(0, two, keys, limit) and len(listed) == 3, "after a rebalance"
