"""Fault: S3 failing for 60 s in the middle of the worker's spill of several sessions, on
Tansu + chDB + moto behind a TCP proxy that resets, then refuses, every connection.
Batches that arrive during the outage (late ones, a replay) land too. Nothing is deleted
while S3 is down, the spill finishes once S3 is back, and every session read back
(through `session_lines` and from S3 directly) equals the ground truth: 0 lost, 0
duplicated. REPLAY_TEST_S3_OUTAGE_SECONDS shortens the outage for local iterations."""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from replay_ingest.generator.capture import generate
from tests.checks import key_of, lines_of, urlopen_text
from tests.reference import events_of
from tests.s3_proxy import FaultProxy
from tests.stack import BUCKET, WINDOWS, S3Server, Stack, WorkerProcess, archived_events, wait_until
from tests.workloads import NOW, archive_options

OUTAGE_SECONDS = float(os.environ.get("REPLAY_TEST_S3_OUTAGE_SECONDS", "60"))


@dataclass
class Batch:
    session_id: str
    chunk_id: str
    messages: list[bytes]
    events: list[tuple[tuple[int, int, str, int], dict[str, Any]]]  # (archive order, event)
    first: int
    last: int


def batches(sessions: int, seed: int) -> list[Batch]:
    """The archive workload (tests.workloads), batch by batch (sessions 12 to 5 days old)."""
    opts = archive_options(sessions, seed)
    out = []
    for messages, truth in generate(opts):
        events = [
            ((e["timestamp"], truth.first_timestamp, truth.chunk_id, i), e)
            for i, e in enumerate(events_of(messages))
        ]
        out.append(
            Batch(
                truth.session_id,
                truth.chunk_id,
                messages,
                events,
                truth.first_timestamp,
                truth.last_timestamp,
            )
        )
    return out


def truth_of(all_batches: list[Batch]) -> dict[str, list[dict[str, Any]]]:
    """Per session, its events in archive order."""
    found: dict[str, list[Any]] = {}
    for batch in all_batches:
        found.setdefault(batch.session_id, []).extend(batch.events)
    return {s: [e for _, e in sorted(pairs, key=lambda p: p[0])] for s, pairs in found.items()}


def canonical(events: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.dumps(e, sort_keys=True) for e in events)


def assert_same_events(got: list[dict[str, Any]], want: list[dict[str, Any]], what: str) -> None:
    """Every event once, in timestamp order (ties between parts may come in part order)."""
    assert [e["timestamp"] for e in got] == sorted(e["timestamp"] for e in got), what
    assert canonical(got) == canonical(want), f"{what}: lost or duplicated events"


def hot_rows(worker: WorkerProcess) -> dict[str, int]:
    rows = worker.sql(
        "SELECT session_id, count() AS n FROM session_recording_events FINAL GROUP BY session_id"
    )
    return {r["session_id"]: int(r["n"]) for r in rows}


def stored_keys(s3: S3Server) -> set[str]:
    try:
        listing = s3.client().list_objects_v2(Bucket=BUCKET).get("Contents", [])
    except Exception:  # the bucket does not exist before the first spill
        return set()
    return {o["Key"] for o in listing}


def test_s3_failing_for_60s_during_a_spill_loses_and_duplicates_nothing(
    stack: Stack, s3_server: S3Server
) -> None:
    all_batches = batches(14, seed=61)
    truth = truth_of(all_batches)
    ends = {s: max(b.last for b in all_batches if b.session_id == s) for s in truth}
    starts = {s: min(b.first for b in all_batches if b.session_id == s) for s in truth}
    cutoff = (NOW - timedelta(days=7)).timestamp() * 1000
    archived = {s for s in truth if ends[s] < cutoff}
    assert 3 <= len(archived) < len(truth)
    # a middle batch of each archived session arrives late, during the outage: the
    # session's span is unchanged, so it is past retention with or without it
    held = {}
    for session_id in sorted(archived):
        own = [b for b in all_batches if b.session_id == session_id]
        if len(own) >= 3:
            held[session_id] = own[1]
    assert len(held) >= 2
    early = [b for b in all_batches if b not in held.values()]

    stack.s3_endpoint = s3_server.endpoint
    worker = stack.worker(**WINDOWS)
    worker.start()
    stack.produce([m for b in early for m in b.messages])
    wait_until(
        lambda: worker.scalar("SELECT count() FROM session_recording_events FINAL") == len(early),
        180,
        "every early batch written",
    )
    wait_until(
        lambda: worker.scalar("SELECT count() FROM session_replay_summary") == len(truth),
        180,
        "every session summarised",
    )
    worker.stop()

    proxy = FaultProxy(s3_server.port)
    proxy.trip = lambda: bool(stored_keys(s3_server))  # once the first object is stored
    worker.env |= {
        "REPLAY_S3_ENDPOINT_URL": proxy.endpoint,
        "REPLAY_SPILL_INTERVAL_SECONDS": "2",
        "REPLAY_S3_RETRY_SECONDS": str(OUTAGE_SECONDS + 120),
    }
    try:
        worker.start()
        wait_until(lambda: proxy.tripped_at is not None, 120, "the spill's first object")
        tripped = proxy.tripped_at or 0.0
        first_stored = stored_keys(s3_server)
        assert len(first_stored) == 1  # the spill is in the middle of its run
        start_counts = hot_rows(worker)
        assert sum(start_counts.values()) == len(early)  # nothing deleted before the outage
        first = next(s for s in archived if key_of(s, starts[s]) in first_stored)
        replay = next(b for b in early if b.session_id == first)  # a DLQ replay, say
        stack.produce([m for b in held.values() for m in b.messages] + replay.messages)

        def steady() -> bool:
            """While S3 is down: no raw row deleted, no object added, held ones arrive."""
            counts = hot_rows(worker)
            assert all(counts.get(s, 0) >= n for s, n in start_counts.items()), counts
            assert stored_keys(s3_server) == first_stored
            return time.monotonic() >= tripped + OUTAGE_SECONDS / 2

        wait_until(steady, OUTAGE_SECONDS + 30, "the first half of the outage (resets)", 1)
        proxy.set_mode("refuse")
        wait_until(
            lambda: steady() and time.monotonic() >= tripped + OUTAGE_SECONDS,
            OUTAGE_SECONDS + 30,
            "the second half of the outage (refusals)",
            1,
        )
        assert sum(hot_rows(worker).values()) == len(all_batches)  # the held ones landed
        assert worker.metric("replay_s3_failures_total") > 0
        proxy.set_mode("up")

        def drained() -> bool:
            counts = hot_rows(worker)
            index = {
                r["session_id"]: (r["state"], int(r["event_count"]))
                for r in worker.sql(
                    "SELECT session_id, toString(state) AS state, event_count "
                    "FROM session_recording_archive FINAL"
                )
            }
            return not any(counts.get(s) for s in archived) and index == {
                s: ("complete", len(truth[s])) for s in archived
            }

        wait_until(drained, 180, "every archived session complete, its late rows included")
        assert worker.metric("replay_spill_failures_total") == 0  # an outage is no failure
        for session_id in truth:  # through session_lines, in the worker
            text = urlopen_text(worker, f"/api/teams/1/sessions/{session_id}/snapshots")
            got = [json.loads(line) for line in text.splitlines()]
            if session_id == first and first in held:
                assert_same_events(got, truth[session_id], session_id)  # two parts
            else:
                assert got == truth[session_id], session_id
        assert hot_rows(worker) == {
            s: sum(1 for b in all_batches if b.session_id == s) for s in truth if s not in archived
        }
        worker.stop()
    finally:
        proxy.close()

    stored = s3_server.objects()  # and from S3 directly
    for session_id in archived:
        prefix = key_of(session_id, starts[session_id]).removesuffix("jsonl.zst")
        parts = [
            archived_events(lines_of(stored[k])) for k in sorted(stored) if k.startswith(prefix)
        ]
        assert len(parts) == (2 if session_id == first and first in held else 1)
        for part in parts:
            assert [e["timestamp"] for e in part] == sorted(e["timestamp"] for e in part)
        assert canonical([e for part in parts for e in part]) == canonical(truth[session_id])
        if len(parts) == 1:
            assert parts[0] == truth[session_id]
    assert len(stored) == len(archived) + (1 if first in held else 0)
