"""Network and performance recordings: a batch of PerformanceEntry objects parsed into
one row per entry, bad entries reported next to the good ones kept, bad batches refused
(end to end into ClickHouse: tests/e2e/test_performance.py)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from config.teams import Team, TeamRegistry
from sinks.clickhouse.schema import PERFORMANCE_COLUMNS
from streams.dlq import Rejected
from streams.performance import parse_performance
from tests import builders

REGISTRY = TeamRegistry.of([Team(1, "token-1"), Team(2, "token-2")])
ORIGIN = builders.TS + 0.5


def batch(**overrides: Any) -> bytes:
    return builders.performance_report(overrides.pop("time_origin", ORIGIN), **overrides)


def rows_of(raw: bytes) -> list[dict[str, Any]]:
    rows, problem = parse_performance(raw, REGISTRY, 10**6)
    assert problem is None, problem
    return [dict(zip(PERFORMANCE_COLUMNS, row, strict=True)) for row in rows]


def test_one_row_per_entry_with_its_fields() -> None:
    resource, paint, longtask = rows_of(batch())
    assert resource["timestamp"] == round(ORIGIN + 100.25)
    assert (resource["entry_type"], resource["initiator_type"], resource["response_status"]) == (
        "resource",
        "fetch",
        404,
    )
    assert (resource["encoded_body_size"], resource["decoded_body_size"]) == (1000, 4000)
    assert (resource["session_id"], resource["pageview_id"], resource["team_id"]) == (
        "session-1",
        "pageview-1",
        1,
    )
    assert paint["name"] == "first-paint" and paint["response_end"] is None
    assert (
        longtask["entry_type"] == "longtask" and longtask["duration"] == 60
    )  # kept, common fields
    assert len({resource["entry_id"], paint["entry_id"], longtask["entry_id"]}) == 3
    assert rows_of(batch())[0]["entry_id"] == resource["entry_id"]  # stable across replays


def test_bad_entries_are_reported_and_good_ones_kept() -> None:
    entries = [
        {"entryType": "resource"},
        {"name": "ok", "entryType": "paint", "startTime": 1},
        {"name": 5, "entryType": "paint", "startTime": 2},
        "not an object",
    ]
    rows, problem = parse_performance(batch(entries=entries), REGISTRY, 10**6)
    assert len(rows) == 1
    assert problem is not None and problem.reason == "invalid_entry"
    assert "entry 0" in problem.error and "entry 2" in problem.error and "entry 3" in problem.error


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"token": "token-1", "entries": [', "invalid_json"),
        (batch(token="nope"), "unknown_token"),
        (batch(team_id=2), "team_mismatch"),
        (batch(session_id="../x"), "invalid_id"),
        (batch(pageview_id=""), "missing_field"),
        (batch(entries={"a": 1}), "invalid_event"),
        (batch(time_origin=-5), "invalid_event"),
        (msgspec.json.encode({"token": "token-1"}), "missing_field"),
    ],
)
def test_bad_reports_are_rejected(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_performance(raw, REGISTRY, 10**6)
    assert info.value.reason == reason
