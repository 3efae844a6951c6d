"""End to end on a real Tansu broker and chDB: `replay-ingest worker` child processes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests import builders
from tests.checks import ROWS_FINAL, assert_rows_match
from tests.stack import (
    CAPTURE,
    DLQ,
    PARTITIONS,
    DeadDisk,
    Stack,
    committed_offsets,
    wait_until,
)
from tests.workloads import generated, shuffled


def test_generated_sessions_land_once_per_chunk_id(stack: Stack) -> None:
    messages, truth = generated(
        100, seed=7, chunk_size=250_000, large_full_snapshots=4, incremental_count_mean=12
    )
    stream, partitions = shuffled(messages, seed=7)
    assert sum(1 for t in truth.values() if t.chunk_count >= 8) >= 4  # > 2 MB, several chunks
    worker = stack.worker().start()
    stack.produce(stream, partitions)

    wait_until(lambda: worker.scalar(ROWS_FINAL) >= len(truth), 240, "every batch in ClickHouse")
    assert_rows_match(worker, truth)
    assert worker.scalar(ROWS_FINAL) == len(truth)
    assert worker.metric("replay_dlq_messages_total") == 0
    wrong_flags = sum(
        1 for t in truth.values() if t.producer_flag not in (None, t.has_full_snapshot)
    )
    assert worker.metric("replay_full_snapshot_flag_mismatch_total") >= wrong_flags > 0


def _crafted(tmp_ttl_pieces: list[bytes]) -> dict[str, bytes]:
    """One message per DLQ reason (chunk_expired: the first of two pieces)."""
    b = builders
    not_gzip = b.snapshot_data(data="bm90IGd6aXA=")  # base64 of "not gzip"
    not_events = b.snapshot_data(data=builders.encode_events({"not": "a list"}))  # type: ignore[arg-type]
    return {
        "invalid_json": b'{"token": "token-1", "data": ',
        "missing_field": b.capture(drop=("token",)),
        "invalid_event": b.capture(event="$pageview"),
        "invalid_id": b.capture(session_id="../../etc"),
        "unknown_token": b.capture(token="who-knows"),
        "team_mismatch": b.capture(token="token-1", team_id=2),
        "recording_disabled": b.capture(token="token-disabled", team_id=3),
        "invalid_chunk": b.capture(snapshot=b.snapshot_data(chunk_index=3, chunk_count=2)),
        "invalid_base64": b.capture(snapshot=b.snapshot_data(data="***not base64***")),
        "invalid_gzip": b.capture(snapshot=not_gzip),
        "invalid_events": b.capture(snapshot=not_events),
        "oversized": b.capture(snapshot=b.snapshot_data(data="A" * 300_000)),
        "chunk_expired": tmp_ttl_pieces[0],
    }


def test_every_dlq_reason_keeps_original_bytes_and_headers(stack: Stack) -> None:
    worker = stack.worker(
        chunk_ttl_seconds="2", chunk_expiry_interval_seconds="0.5", max_message_bytes="200000"
    ).start()
    expiring = builders.pieces_of(builders.events(40), 2, session_id="expiring")
    bad = _crafted(expiring)
    good = [builders.capture(session_id=f"good-{i}") for i in range(5)]
    good += builders.pieces_of(builders.events(30), 3, session_id="good-multi")
    values = list(bad.values()) + good
    stack.produce(values, [i % PARTITIONS for i in range(len(values))])

    records = stack.consume(DLQ, len(bad), timeout=90)
    by_reason = {}
    for record in records:
        headers = {k: v.decode() for k, v in record.headers}
        by_reason[headers["dlq-reason"]] = (record, headers)
    assert set(by_reason) == set(bad)
    for reason, (record, headers) in by_reason.items():
        assert record.value == bad[reason], reason
        assert headers["dlq-source-topic"] == CAPTURE
        source = values.index(bad[reason])
        assert headers["dlq-source-partition"] == str(source % PARTITIONS)
        assert int(headers["dlq-source-offset"]) >= 0
        assert headers["dlq-stage"] and headers["dlq-error"]
        assert worker.metric("replay_dlq_messages_total", reason=reason) == 1
    wait_until(lambda: worker.scalar(ROWS_FINAL) == 6, 30, "the good messages after the bad ones")
    assert worker.metric("replay_chunk_sets_expired_total") == 1


def test_kill_9_mid_stream_loses_and_duplicates_nothing(stack: Stack) -> None:
    messages, truth = generated(
        40, seed=11, chunk_size=60_000, large_full_snapshots=3, incremental_count_mean=8
    )
    stream, partitions = shuffled(messages, seed=11)
    worker = stack.worker(take_max_messages="50").start()
    half = len(stream) // 2
    stack.produce(stream[:half], partitions[:half])
    wait_until(
        lambda: (
            worker.metric("replay_chunk_pieces_total", outcome="stored") > 0
            and worker.scalar(ROWS_FINAL) > 0
        ),
        120,
        "rows written and pieces held",
    )
    worker.kill9()
    stack.produce(stream[half:], partitions[half:])
    worker.start()
    wait_until(lambda: worker.scalar(ROWS_FINAL) >= len(truth), 240, "every batch after restart")
    assert_rows_match(worker, truth)
    assert worker.metric("replay_dlq_messages_total") == 0


def test_clickhouse_failure_keeps_offsets_and_loses_nothing(
    stack: Stack, dead_disk: DeadDisk
) -> None:
    first, first_truth = generated(5, seed=21, incremental_count_mean=5)
    second, second_truth = generated(5, seed=22, incremental_count_mean=5)
    worker = stack.worker().start()
    stack.produce(first)
    wait_until(lambda: worker.scalar(ROWS_FINAL) == len(first_truth), 120, "first rows")
    store = Path(worker.env["REPLAY_DATA_DIR"]) / "clickhouse" / "store"
    group = worker.env["REPLAY_APP_ID"]
    with dead_disk(store):  # the disk under ClickHouse refuses every new part
        stack.produce(second)
        wait_until(
            lambda: worker.metric("replay_clickhouse_insert_failures_total") >= 3,
            60,
            "failing inserts",
        )
        committed = asyncio.run(committed_offsets(stack.broker.bootstrap, group, CAPTURE))
        assert sum(max(0, offset) for offset in committed.values()) <= len(first)
        assert worker.scalar(ROWS_FINAL) == len(first_truth)
    wait_until(
        lambda: worker.scalar(ROWS_FINAL) == len(first_truth) + len(second_truth),
        120,
        "rows after ClickHouse recovers",
    )
    assert_rows_match(worker, first_truth | second_truth)
    wait_until(
        lambda: (
            sum(asyncio.run(committed_offsets(stack.broker.bootstrap, group, CAPTURE)).values())
            == len(first) + len(second)
        ),
        30,
        "offsets committed",
    )
