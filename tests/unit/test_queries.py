"""Every statement of sinks.clickhouse.queries carries its values as server-side
parameters: no value in the SQL text, every placeholder given, every value used, and
clickhouse-connect binds them on the server's side (it would fall back to writing them
into the text on the client's side if no placeholder matched)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from clickhouse_connect.driver.binding import bind_query
from hypothesis import given
from hypothesis import strategies as st

from sinks.clickhouse import queries
from sinks.clickhouse.queries import Query
from sinks.clickhouse.schema import SUMMARY_COLUMNS

HOSTILE = "x' OR 1=1) -- \\ {team_id:Int64}"
START, END = datetime(2024, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), datetime(2024, 1, 3, tzinfo=UTC)
PLACEHOLDER = re.compile(r"\{(\w+):([^{}]+)\}")


def statements(session_id: str) -> dict[str, Query]:
    return {
        "sessions": queries.sessions_query(7, START, END, 50),
        "sessions_unbounded": queries.sessions_query(7),
        "session": queries.session_query(7, session_id),
        "network": queries.network_query(7, session_id),
        "hot_page": queries.hot_page(7, session_id, 2, (1_700_000_000_123, session_id), 64),
        "archive_entry": queries.archive_entry(7, session_id),
        "archive_parts": queries.archive_parts(7, session_id),
        "candidates": queries.spill_candidates({7: 111, 8: 222}, 333, 444),
        "candidates_no_team": queries.spill_candidates({}, 333, 333),
        "hot_row_count": queries.hot_row_count(7, session_id, -1),
        "part_chunk_ids": queries.part_chunk_ids(7, session_id, 3),
        "archived_row_count": queries.archived_row_count(7, session_id),
        "delete_archived_rows": queries.delete_archived_rows(7, session_id),
    }


@pytest.mark.parametrize("name", sorted(statements("s")))
def test_values_travel_as_parameters_bound_on_the_server(name: str) -> None:
    query = statements(HOSTILE)[name]
    named = {match[1] for match in PLACEHOLDER.finditer(query.sql)}
    assert named and named == set(query.parameters), (named, set(query.parameters))
    assert "OR 1=1" not in query.sql and "1700000000123" not in query.sql
    text, bound = bind_query(query.sql, dict(query.parameters))
    assert text == query.sql  # nothing was written into the text
    assert set(bound) == {f"param_{key}" for key in query.parameters}


def test_session_values_are_the_parameters() -> None:
    query = queries.hot_page(7, HOSTILE, 2, (123, "c9"), 64)
    assert dict(query.parameters) == {
        "team_id": 7,
        "session_id": HOSTILE,
        "upto": 2,
        "after_ts": 123,
        "after_chunk": "c9",
        "rows": 64,
    }


def test_sessions_bounds_are_epoch_milliseconds_and_absent_when_not_given() -> None:
    bounded = queries.sessions_query(7, START, END, 50).parameters
    assert (bounded["since"], bounded["until"], bounded["limit"]) == (
        int(START.timestamp() * 1000),
        int(END.timestamp() * 1000),
        50,
    )
    assert set(queries.sessions_query(7).parameters) == {"team_id", "limit"}


def test_candidates_pair_each_team_with_its_cutoff() -> None:
    parameters = queries.spill_candidates({7: 111, 8: 222}, 333, 444).parameters
    assert list(zip(parameters["teams"], parameters["cutoffs"], strict=True)) == [
        (7, 111),
        (8, 222),
    ]
    assert (parameters["default_cutoff"], parameters["latest_cutoff"]) == (333, 444)


def test_the_delete_is_synchronous() -> None:
    settings = queries.delete_archived_rows(7, "s").settings
    assert settings["mutations_sync"] == 2 and settings["lightweight_deletes_sync"] == 2


@given(st.text(max_size=40), st.integers(-(2**63), 2**63 - 1))
def test_inline_writes_each_value_as_one_escaped_typed_literal(session: str, team: int) -> None:
    text = queries.session_query(team, session).inline()
    assert not PLACEHOLDER.search(text)
    literal = session.replace("\\", "\\\\").replace("'", "\\'")
    literal = literal.replace("`", "\\`").replace("\t", "\\\t").replace("\n", "\\\n")
    assert f"team_id = CAST({team} AS Int64)" in text
    assert text.endswith(f"session_id = CAST('{literal}' AS String)")


def test_rows_are_built_by_column_name() -> None:
    row = {"team_id": 7, "session_id": "s", "part": 0, "state": "uploaded", "key": "k"}
    row |= {"bytes": 1, "etag": "e", "sha256": "h", "event_count": 2, "chunk_ids": ["c"]}
    insert = queries.record_part(dict(reversed(row.items())))
    assert dict(zip(insert.columns, insert.rows[0], strict=True)) == row
    with pytest.raises(ValueError, match="columns"):
        queries.record_part({k: v for k, v in row.items() if k != "etag"})


def test_the_summary_marker_names_only_summary_columns() -> None:
    marker = queries.mark_summary_archived(
        team_id=7, session_id="s", distinct_id="d", start=START, end=END, key="k"
    )
    values = dict(zip(marker.columns, marker.rows[0], strict=True))
    assert set(values) <= {*SUMMARY_COLUMNS, "storage", "archive_key"}
    assert (values["storage"], values["archive_key"], values["first_url"]) == ("s3", "k", "")
    assert (values["min_first_timestamp"], values["max_last_timestamp"]) == (START, END)
