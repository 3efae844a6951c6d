"""Network and performance recordings end to end into `performance_events`: replays,
dead letters, TTL and the API (parsing the batches: tests/unit/test_performance.py)."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

from replay_ingest.generator.performance import generate_performance
from replay_ingest.localstack import create_topics
from sinks.clickhouse.schema import PERFORMANCE_COLUMNS
from streams.topics import PERFORMANCE_DLQ_TOPIC, PERFORMANCE_TOPIC
from tests import builders, workloads
from tests.checks import epoch_ms, get
from tests.stack import PARTITIONS, Stack, wait_until

TOPIC, DLQ = PERFORMANCE_TOPIC, PERFORMANCE_DLQ_TOPIC


def test_generated_reports_land_once_per_entry(stack: Stack) -> None:
    # recent sessions: entries older than the 21-day TTL are dropped by ClickHouse itself
    opts = workloads.options(
        25, seed=51, start=datetime.now(UTC) - timedelta(days=3), spread=timedelta(days=2)
    )
    messages, truth = [], {}
    for message, rows in generate_performance(opts):
        messages.append(message)
        for row in rows:
            truth[(row["pageview_id"], row["entry_type"], row["name"], row["start_time"])] = row
    rng = random.Random(51)
    stream = messages + rng.sample(messages, len(messages) // 10)
    rng.shuffle(stream)
    half_bad = builders.performance_report(
        pageview_id="pv-bad",
        entries=[{"name": "kept", "entryType": "paint", "startTime": 3.5}, {"entryType": 7}],
    )
    bad = [b"{nope", builders.performance_report(token="nope"), half_bad]
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
        assert round(epoch_ms(row["timestamp"])) == want["timestamp"]
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
    assert [round(epoch_ms(e["timestamp"])) for e in body["entries"]] == [
        t["timestamp"] for t in mine
    ]
    assert sorted(got) == sorted(
        (t["pageview_id"], t["entry_type"], t["name"], t["start_time"]) for t in mine
    )
    assert get(worker, f"/api/teams/1/sessions/{session}/network", "read-key-2")[0] == 401
