"""Faults through a running worker: kill -9 five times in a row mid-stream, and ClickHouse
failing for 60 s under traffic. Each ends with 0 rows lost and 0 duplicated: every batch
row equals its ground truth, once, and every session summary equals the reference."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from replay_ingest.generator.capture import BatchTruth
from tests import workloads
from tests.checks import ROWS_FINAL, assert_rows_match, assert_summaries, wait_for_summary
from tests.stack import (
    CAPTURE,
    WINDOWS,
    DeadDisk,
    Stack,
    WorkerProcess,
    committed_offsets,
    wait_until,
)
from tests.workloads import shuffled

OUTAGE_SECONDS = 60


def workload(
    sessions: int, seed: int
) -> tuple[list[bytes], dict[str, BatchTruth], dict[str, dict[str, Any]]]:
    """Messages, the truth of every batch row, and the reference summary per session."""
    return workloads.summarised(
        sessions, seed, chunk_size=80_000, large_full_snapshots=2, incremental_count_mean=10
    )


def assert_exact(
    worker: WorkerProcess, rows: dict[str, BatchTruth], summaries: dict[str, dict[str, Any]]
) -> None:
    wait_until(lambda: worker.scalar(ROWS_FINAL) >= len(rows), 240, "every batch row")
    wait_for_summary(worker, summaries)
    assert_rows_match(worker, rows)  # 0 lost, and each chunk_id once
    assert worker.scalar(ROWS_FINAL) == len(rows)
    assert_summaries(worker, summaries)  # message and event counts: nothing counted twice
    assert worker.metric("replay_dlq_messages_total") == 0


def test_five_kill_9_in_a_row_mid_stream(stack: Stack) -> None:
    messages, rows, summaries = workload(30, seed=41)
    stream, partitions = shuffled(messages, seed=41)
    worker = stack.worker(take_max_messages="40", **WINDOWS).start()
    slices = 6
    size = -(-len(stream) // slices)
    for kill in range(slices - 1):
        part = slice(kill * size, (kill + 1) * size)
        before = worker.scalar(ROWS_FINAL)
        stack.produce(stream[part], partitions[part])
        wait_until(lambda b=before: worker.scalar(ROWS_FINAL) > b, 120, f"progress {kill}")
        worker.kill9()  # mid-stream: the slice is still being handled
        worker.start()
    last = slice((slices - 1) * size, None)
    stack.produce(stream[last], partitions[last])
    assert worker.starts == slices
    assert_exact(worker, rows, summaries)


def test_clickhouse_failing_for_60_s_under_traffic(stack: Stack, dead_disk: DeadDisk) -> None:
    messages, rows, summaries = workload(20, seed=42)
    stream, partitions = shuffled(messages, seed=42)
    half = len(stream) // 2
    worker = stack.worker(**WINDOWS).start()
    stack.produce(stream[:half], partitions[:half])
    wait_until(lambda: worker.scalar(ROWS_FINAL) > 0, 120, "rows before the outage")
    store = Path(worker.env["REPLAY_DATA_DIR"]) / "clickhouse" / "store"
    with dead_disk(store):  # the disk under ClickHouse refuses every new part
        started = time.monotonic()
        stack.produce(stream[half:], partitions[half:])
        written = worker.scalar(ROWS_FINAL)
        wait_until(
            lambda: (
                time.monotonic() - started >= OUTAGE_SECONDS
                and worker.metric("replay_clickhouse_insert_failures_total") >= 3
            ),
            OUTAGE_SECONDS + 60,
            "inserts failing for the whole outage",
        )
        assert worker.scalar(ROWS_FINAL) == written, "nothing lands while the disk is dead"
        group = worker.env["REPLAY_APP_ID"]
        committed = asyncio.run(committed_offsets(stack.broker.bootstrap, group, CAPTURE))
        assert sum(max(0, offset) for offset in committed.values()) < len(stream)
        assert worker.metric("replay_clickhouse_unwritable_rows_total") == 0
    assert_exact(worker, rows, summaries)
