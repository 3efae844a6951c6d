"""Network and performance recordings: parsing reports of PerformanceEntry objects, and
end to end into `performance_events` with replays, dead letters, TTL and the API."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest

from config.teams import Team, TeamRegistry
from replay_ingest.generator.performance import generate_performance
from replay_ingest.generator.sessions import GenerateOptions
from replay_ingest.localstack import create_topics
from sinks.clickhouse.schema import PERFORMANCE_COLUMNS
from streams.dlq import Rejected
from streams.performance import parse_performance
from tests import builders
from tests.e2e.test_summary_e2e import get
from tests.stack import PARTITIONS, Stack, wait_until

REGISTRY = TeamRegistry.of([Team(1, "token-1"), Team(2, "token-2")])
TOPIC, DLQ = "performance_events_batches", "performance_events_batches_dlq"
ORIGIN = round((datetime.now(UTC) - timedelta(days=1)).timestamp() * 1000) + 0.5  # within TTL


def report(**overrides: Any) -> bytes:
    return builders.performance_report(overrides.pop("time_origin", ORIGIN), **overrides)


def rows_of(raw: bytes) -> list[dict[str, Any]]:
    rows, problem = parse_performance(raw, REGISTRY, 10**6)
    assert problem is None, problem
    return [dict(zip(PERFORMANCE_COLUMNS, row, strict=True)) for row in rows]


def test_one_row_per_entry_with_its_fields() -> None:
    resource, paint, longtask = rows_of(report())
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
    assert rows_of(report())[0]["entry_id"] == resource["entry_id"]  # stable across replays


def test_bad_entries_are_reported_and_good_ones_kept() -> None:
    entries = [
        {"entryType": "resource"},
        {"name": "ok", "entryType": "paint", "startTime": 1},
        {"name": 5, "entryType": "paint", "startTime": 2},
        "not an object",
    ]
    rows, problem = parse_performance(report(entries=entries), REGISTRY, 10**6)
    assert len(rows) == 1
    assert problem is not None and problem.reason == "invalid_entry"
    assert "entry 0" in problem.error and "entry 2" in problem.error and "entry 3" in problem.error


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"token": "token-1", "entries": [', "invalid_json"),
        (report(token="nope"), "unknown_token"),
        (report(team_id=2), "team_mismatch"),
        (report(session_id="../x"), "invalid_id"),
        (report(pageview_id=""), "missing_field"),
        (report(entries={"a": 1}), "invalid_event"),
        (report(time_origin=-5), "invalid_event"),
        (msgspec.json.encode({"token": "token-1"}), "missing_field"),
    ],
)
def test_bad_reports_are_rejected(raw: bytes, reason: str) -> None:
    with pytest.raises(Rejected) as info:
        parse_performance(raw, REGISTRY, 10**6)
    assert info.value.reason == reason


def test_generated_reports_land_once_per_entry(stack: Stack) -> None:
    # recent sessions: entries older than the 21-day TTL are dropped by ClickHouse itself
    opts = GenerateOptions(
        sessions=25,
        seed=51,
        token="token-1",
        team_id=1,
        start=datetime.now(UTC) - timedelta(days=3),
        spread=timedelta(days=2),
    )
    messages, truth = [], {}
    for message, rows in generate_performance(opts):
        messages.append(message)
        for row in rows:
            truth[(row["pageview_id"], row["entry_type"], row["name"], row["start_time"])] = row
    rng = random.Random(51)
    stream = messages + rng.sample(messages, len(messages) // 10)
    rng.shuffle(stream)
    half_bad = report(
        pageview_id="pv-bad",
        entries=[{"name": "kept", "entryType": "paint", "startTime": 3.5}, {"entryType": 7}],
    )
    bad = [b"{nope", report(token="nope"), half_bad]
    asyncio.run(create_topics(stack.broker.bootstrap, [TOPIC], PARTITIONS))
    worker = stack.worker().start()
    stack.produce(stream + bad, [rng.randrange(PARTITIONS) for _ in stream + bad], topic=TOPIC)

    expected = len(truth) + 1
    wait_until(
        lambda: worker.scalar("SELECT count() FROM performance_events FINAL") == expected,
        120,
        f"{expected} entries",
    )
    letters = stack.consume(DLQ, 3)
    reasons = sorted(dict(r.headers)["dlq-reason"].decode() for r in letters)
    assert reasons == ["invalid_entry", "invalid_json", "unknown_token"]
    assert {r.value for r in letters} == set(bad)
    assert worker.metric("replay_dlq_messages_total", topic=DLQ, reason="invalid_entry") == 1

    rows = worker.sql("SELECT * FROM performance_events FINAL WHERE pageview_id != 'pv-bad'")
    assert len(rows) == len(truth)
    for row in rows:
        want = truth[(row["pageview_id"], row["entry_type"], row["name"], row["start_time"])]
        for column in PERFORMANCE_COLUMNS:
            if column in ("entry_id", "timestamp"):
                continue
            assert row[column] == want.get(column), (column, row[column], want.get(column))
        assert _epoch_ms(row["timestamp"]) == want["timestamp"]
    ddl = worker.scalar("SHOW CREATE TABLE performance_events")
    assert "TTL toDateTime(timestamp) + toIntervalDay(21)" in ddl

    session = next(iter(truth.values()))["session_id"]
    status, body = get(worker, f"/api/teams/1/sessions/{session}/network", "read-key-1")
    assert status == 200
    got = [(e["pageview_id"], e["entry_type"], e["name"], e["start_time"]) for e in body["entries"]]
    mine = sorted(
        (t for t in truth.values() if t["session_id"] == session),
        key=lambda t: (t["timestamp"], t["start_time"]),
    )
    assert [_epoch_ms(e["timestamp"]) for e in body["entries"]] == [t["timestamp"] for t in mine]
    assert sorted(got) == sorted(
        (t["pageview_id"], t["entry_type"], t["name"], t["start_time"]) for t in mine
    )
    assert get(worker, f"/api/teams/1/sessions/{session}/network", "read-key-2")[0] == 401


def _epoch_ms(text: str) -> int:
    moment = datetime.fromisoformat(text)
    return round((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)
