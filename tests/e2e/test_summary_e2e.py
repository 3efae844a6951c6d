"""Session summary end to end (Tansu + chDB worker): exact statistics under shuffling,
duplicates, late data, window boundaries and kill -9; the sessions API and CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

from tests import builders, reference, workloads
from tests.checks import SUMMARY, assert_summaries, get, wait_for_summary
from tests.stack import WINDOWS, Stack, wait_until
from tests.workloads import shuffled


def workload(sessions: int, seed: int) -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """Generated messages and, per session, the reference summary."""
    messages, _, expected = workloads.summarised(
        sessions,
        seed,
        chunk_size=120_000,
        large_full_snapshots=2,
        incremental_count_mean=10,
        incremental_size_mean=6_000,
    )
    return messages, expected


def test_summary_equals_reference_for_every_session(stack: Stack) -> None:
    messages, expected = workload(100, seed=31)
    stream, partitions = shuffled(messages, seed=31)
    worker = stack.worker(**WINDOWS).start()
    stack.produce(stream, partitions)
    wait_for_summary(worker, expected)
    assert_summaries(worker, expected)
    rage = [e["rage_click_count"] for e in expected.values()]
    assert sum(rage) > 20 and rage.count(0) > 0, "rage clicks, and sessions without"
    parts = worker.scalar("SELECT count() FROM session_replay_events FINAL")
    assert parts > len(expected), "sessions span several windows (and late parts)"
    assert worker.metric("replay_summary_batches_total", outcome="duplicate") > 0
    recent = worker.metric("replay_recent_sessions")
    assert recent == len(expected)
    with_full = worker.metric("replay_recent_sessions", has_full_snapshot="true")
    assert with_full == sum(1 for e in expected.values() if e["has_full_snapshot"])


def test_summary_exact_after_kill_9(stack: Stack) -> None:
    messages, expected = workload(30, seed=32)
    stream, partitions = shuffled(messages, seed=32)
    worker = stack.worker(take_max_messages="40", **WINDOWS).start()
    half = len(stream) // 2
    stack.produce(stream[:half], partitions[:half])
    wait_until(
        lambda: worker.scalar("SELECT count() FROM session_replay_events") > 0,
        120,
        "summary parts written",
    )
    worker.kill9()
    stack.produce(stream[half:], partitions[half:])
    worker.start()
    wait_for_summary(worker, expected)
    assert_summaries(worker, expected)


def test_activity_joins_across_a_window_boundary(stack: Stack) -> None:
    boundary = (builders.TS // 300_000 + 1) * 300_000
    before = [
        {"type": 3, "timestamp": boundary - 2000 + i * 500, "data": {"source": 1}} for i in range(3)
    ]  # boundary-2000 .. boundary-1000
    after = [
        {"type": 3, "timestamp": boundary + 500 + i * 1250, "data": {"source": 2, "type": 2}}
        for i in range(3)
    ]  # boundary+500 .. boundary+3000
    values = [
        builders.capture(
            session_id="straddle",
            snapshot=builders.snapshot_data(data=builders.encode_events(batch)),
        )
        for batch in (after, before)
    ]
    worker = stack.worker(**WINDOWS).start()
    stack.produce(values)
    wait_until(lambda: worker.sql(SUMMARY + " WHERE message_count = 2"), 60, "both batches")
    row = worker.sql(SUMMARY)[0]
    assert row["part_count"] == 2  # one part per window
    assert (
        row["active_milliseconds"]
        == 5000
        == reference.active_ms([e["timestamp"] for e in before + after])
    )
    assert row["click_count"] == 3 and row["mouse_activity_count"] == 6


def test_sessions_api_and_cli(stack: Stack) -> None:
    values = [
        builders.capture(
            session_id=f"api-{i}",
            snapshot=builders.snapshot_data(
                data=builders.encode_events(builders.events(4, start=builders.TS + i * 60_000))
            ),
        )
        for i in range(3)
    ]
    values.append(builders.capture(token="token-2", team_id=2, session_id="other-team"))
    worker = stack.worker(**WINDOWS).start()
    stack.produce(values)
    wait_until(
        lambda: worker.scalar("SELECT count() FROM session_replay_summary") == 4,
        60,
        "four sessions",
    )

    status, body = get(worker, "/api/teams/1/sessions", "read-key-1")
    assert status == 200
    assert [s["session_id"] for s in body["sessions"]] == ["api-2", "api-1", "api-0"]
    status, body = get(
        worker, "/api/teams/1/sessions?limit=1&since=2026-10-26T00:00:00Z", "read-key-1"
    )
    assert status == 200 and [s["session_id"] for s in body["sessions"]] == ["api-2"]
    until = "2026-10-26T07:34:00"  # naive = UTC; api-0 starts 07:33:20, api-1 07:34:20
    status, body = get(worker, f"/api/teams/1/sessions?until={until}", "read-key-1")
    assert [s["session_id"] for s in body["sessions"]] == ["api-0"]
    status, body = get(worker, "/api/teams/1/sessions/api-1", "read-key-1")
    assert status == 200 and body["session_id"] == "api-1" and body["event_count"] == 4
    assert body["has_full_snapshot"] is True and body["first_url"] == "https://example.com/"

    for path, key in [
        ("/api/teams/1/sessions", None),
        ("/api/teams/1/sessions", "wrong"),
        ("/api/teams/1/sessions", "read-key-2"),
        ("/api/teams/9/sessions", "x"),
        ("/api/teams/3/sessions", ""),
        ("/api/teams/1/sessions/api-1", "read-key-2"),
    ]:
        assert get(worker, path, key)[0] == 401, (path, key)
    assert get(worker, "/api/teams/2/sessions/api-1", "read-key-2")[0] == 404
    assert get(worker, "/api/teams/1/sessions/nope", "read-key-1")[0] == 404
    for bad in ("limit=0", "limit=abc", "limit=100000", "since=yesterday", "until=2026-13-01"):
        assert get(worker, f"/api/teams/1/sessions?{bad}", "read-key-1")[0] == 400, bad
    assert get(worker, "/api/teams/1/sessions/bad..id", "read-key-1")[0] == 400
    assert get(worker, "/api/teams/abc/sessions", "read-key-1")[0] == 400

    cli = [sys.executable, "-m", "replay_ingest", "sessions", "list", "--team", "1"]
    out = subprocess.run(
        [*cli, "--format", "jsonl", "--since", "2026-10-26T07:34:00"],
        env=worker.env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert [json.loads(line)["session_id"] for line in out.splitlines()] == ["api-2", "api-1"]
    table = subprocess.run(cli, env=worker.env, capture_output=True, text=True, check=True).stdout
    assert table.splitlines()[0].split()[:2] == ["team_id", "session_id"]
    assert len(table.splitlines()) == 2 + 3
    bad = subprocess.run([*cli, "--since", "soon"], env=worker.env, capture_output=True, text=True)
    assert bad.returncode == 2 and "--since" in bad.stderr
