"""Retention and the S3 cold tier: keys, event order, and the spill end to end on Tansu +
chDB + moto's S3 server, including kill -9 between steps and S3 being down (late rows,
failing sessions, bounded reads: test_archive_parts.py; S3 down mid-spill:
test_archive_faults.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import zstandard
from hypothesis import given
from hypothesis import strategies as st

from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from retention.read import ordered_events
from sinks.s3_keys import UnsafeKey, session_key
from tests.e2e.test_summary_e2e import WINDOWS, events_of, get
from tests.stack import S3Server, Stack, WorkerProcess, wait_until

NOW = datetime.now(UTC)
BUCKET, PREFIX = "replay-test", "recordings"


def test_session_key_is_stable_and_documented() -> None:
    start = datetime(2026, 11, 3, 23, 59, tzinfo=UTC)
    key = session_key("recordings/", 7, "0192-abc_DEF", start)
    assert key == "recordings/v1/team_id=7/date=2026-11-03/session_id=0192-abc_DEF.jsonl.zst"
    assert session_key("", 7, "s", start).startswith("v1/team_id=7/")


@pytest.mark.parametrize("session_id", ["../x", "a/b", "", "..", "a" * 201, "-x", "a\\b", "é"])
def test_ids_that_would_escape_the_prefix_never_form_a_key(session_id: str) -> None:
    with pytest.raises(UnsafeKey):
        session_key("p", 1, session_id, NOW)


@pytest.mark.parametrize("team_id", [0, -1, True])
def test_team_ids_must_be_positive_integers(team_id: int) -> None:
    with pytest.raises(UnsafeKey):
        session_key("p", team_id, "s", NOW)


@given(st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=6), min_size=1, max_size=8))
def test_events_come_out_in_timestamp_order(batches: list[list[int]]) -> None:
    batches = sorted(batches, key=min)
    texts = [
        (min(b), json.dumps([{"timestamp": ts, "i": [n, i]} for i, ts in enumerate(b)]))
        for n, b in enumerate(batches)
    ]
    out = [json.loads(line) for line in ordered_events(texts)]
    expected = sorted(
        ({"timestamp": ts, "i": [n, i]} for n, b in enumerate(batches) for i, ts in enumerate(b)),
        key=lambda e: (e["timestamp"], e["i"]),
    )
    assert out == expected


# --- end to end -------------------------------------------------------------------------


def archive_options(sessions: int, seed: int) -> GenerateOptions:
    """Sessions spread from 12 to 5 days ago: some past the 7-day retention, some not."""
    return GenerateOptions(
        sessions=sessions,
        seed=seed,
        token="token-1",
        team_id=1,
        chunk_size=100_000,
        incremental_count_mean=6,
        incremental_size_mean=5_000,
        start=NOW - timedelta(days=12),
    )


def workload(sessions: int, seed: int) -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """Sessions spread from 12 to 5 days ago; per session its events in archive order."""
    opts = archive_options(sessions, seed)
    messages: list[bytes] = []
    found: dict[str, dict[str, Any]] = {}
    for batch_messages, truth in generate(opts):
        messages.extend(batch_messages)
        session = found.setdefault(truth.session_id, {"events": [], "end": 0, "start": 2**62})
        for index, event in enumerate(events_of(batch_messages)):
            order = (event["timestamp"], truth.first_timestamp, truth.chunk_id, index)
            session["events"].append((order, event))
        session["end"] = max(session["end"], truth.last_timestamp)
        session["start"] = min(session["start"], truth.first_timestamp)
    for session in found.values():
        session["events"] = [event for _, event in sorted(session["events"], key=lambda x: x[0])]
    return messages, found


def past_retention(sessions: dict[str, dict[str, Any]]) -> set[str]:
    cutoff = (NOW - timedelta(days=7)).timestamp() * 1000
    return {s for s, info in sessions.items() if info["end"] < cutoff}


def cli(worker: WorkerProcess, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "replay_ingest", *args],
        env=worker.env | env,
        capture_output=True,
        timeout=300,
    )


def sql(worker: WorkerProcess, query: str) -> list[dict[str, Any]]:
    out = cli(worker, "sql", "--format", "jsonl", query)
    assert out.returncode == 0, out.stderr.decode()
    return [json.loads(line) for line in out.stdout.splitlines()]


def ingested(stack: Stack, s3: S3Server, sessions: int, seed: int):  # type: ignore[no-untyped-def]
    stack.s3_endpoint = s3.endpoint
    messages, expected = workload(sessions, seed)
    worker = stack.worker(**WINDOWS).start()
    stack.produce(messages)
    total = len(messages)
    wait_until(
        lambda: worker.scalar("SELECT sum(message_count) FROM session_replay_summary") == total,
        180,
        "every session summarised",
    )
    worker.stop()  # frees chDB for the spill and the CLI
    return worker, expected


def objects(s3: S3Server) -> dict[str, bytes]:
    client = s3.client()
    listing = client.list_objects_v2(Bucket=BUCKET).get("Contents", [])
    return {
        o["Key"]: client.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read() for o in listing
    }


def lines_of(blob: bytes) -> list[Any]:
    text = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return [json.loads(line) for line in text.splitlines()]


def key_of(session_id: str, start_ms: int) -> str:
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    return session_key(PREFIX, 1, session_id, start)


def assert_converged(
    worker: WorkerProcess, s3: S3Server, expected: dict[str, dict[str, Any]]
) -> None:
    archived = past_retention(expected)
    stored = objects(s3)
    assert set(stored) == {key_of(s, expected[s]["start"]) for s in archived}
    for session_id in archived:
        assert (
            lines_of(stored[key_of(session_id, expected[session_id]["start"])])
            == expected[session_id]["events"]
        )
    raw = {
        r["session_id"]: r["n"]
        for r in sql(
            worker,
            "SELECT session_id, count() AS n FROM session_recording_events FINAL "
            "GROUP BY session_id",
        )
    }
    assert set(raw) == set(expected) - archived
    summary = {r["session_id"]: r for r in sql(worker, "SELECT * FROM session_replay_summary")}
    assert {s for s, r in summary.items() if r["storage"] == "s3"} == archived
    assert all(summary[s]["event_count"] == len(expected[s]["events"]) for s in expected)
    index = sql(
        worker,
        "SELECT session_id, toString(state) AS state, event_count, key "
        "FROM session_recording_archive FINAL",
    )
    assert {r["session_id"]: r["state"] for r in index} == dict.fromkeys(archived, "complete")
    assert all(r["event_count"] == len(expected[r["session_id"]]["events"]) for r in index)


def test_spill_archives_past_retention_and_both_tiers_read_the_same(
    stack: Stack, s3_server: S3Server
) -> None:
    worker, expected = ingested(stack, s3_server, 14, seed=41)
    archived = past_retention(expected)
    assert 0 < len(archived) < len(expected)

    out = cli(worker, "spill", "--once")
    assert out.returncode == 0, out.stderr.decode()
    assert f"archived {len(archived)} session(s)" in out.stdout.decode()
    assert_converged(worker, s3_server, expected)

    again = cli(worker, "spill", "--once")
    assert b"archived 0 session(s)" in again.stdout
    assert len(objects(s3_server)) == len(archived)

    for session_id in expected:  # the CLI reads hot and cold alike
        out = cli(worker, "sessions", "get", "--team", "1", "--session", session_id)
        assert [json.loads(line) for line in out.stdout.splitlines()] == expected[session_id][
            "events"
        ]

    worker.start()  # and so does the HTTP API
    for session_id in expected:
        raw = urlopen_text(worker, f"/api/teams/1/sessions/{session_id}/snapshots")
        assert [json.loads(line) for line in raw.splitlines()] == expected[session_id]["events"]
    assert get(worker, f"/api/teams/1/sessions/{next(iter(archived))}/snapshots", None)[0] == 401
    assert get(worker, "/api/teams/1/sessions/nope/snapshots", "read-key-1")[0] == 404


def urlopen_text(worker: WorkerProcess, path: str) -> str:
    import urllib.request

    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}")
    request.add_header("Authorization", "Bearer read-key-1")
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read().decode()


@pytest.mark.parametrize("step", ["object", "upload", "delete"])
def test_spill_killed_between_steps_converges(stack: Stack, s3_server: S3Server, step: str) -> None:
    worker, expected = ingested(stack, s3_server, 6, seed=42)
    assert past_retention(expected)

    crashed = cli(worker, "spill", "--once", REPLAY_SPILL_CRASH_AFTER=step)
    assert crashed.returncode == -9, crashed.stderr.decode()
    index = sql(worker, "SELECT toString(state) AS state FROM session_recording_archive FINAL")
    # killed on the first session: its object stored, and indexed unless killed before
    assert [r["state"] for r in index] == ([] if step == "object" else ["uploaded"])
    assert len(objects(s3_server)) == 1

    out = cli(worker, "spill", "--once")
    assert out.returncode == 0, out.stderr.decode()
    assert_converged(worker, s3_server, expected)


def test_s3_down_deletes_nothing_and_the_next_run_completes(
    stack: Stack, s3_server: S3Server
) -> None:
    worker, expected = ingested(stack, s3_server, 5, seed=43)
    rows = sql(worker, "SELECT count() AS n FROM session_recording_events FINAL")[0]["n"]

    down = cli(
        worker,
        "spill",
        "--once",
        REPLAY_S3_ENDPOINT_URL="http://127.0.0.1:9",
        REPLAY_S3_RETRY_SECONDS="2",
    )
    assert down.returncode == 1 and b"S3 unavailable" in down.stderr
    assert sql(worker, "SELECT count() AS n FROM session_recording_events FINAL")[0]["n"] == rows
    assert sql(worker, "SELECT count() AS n FROM session_recording_archive")[0]["n"] == 0

    out = cli(worker, "spill", "--once")
    assert out.returncode == 0, out.stderr.decode()
    assert_converged(worker, s3_server, expected)


def test_worker_spills_on_its_own_timer(stack: Stack, s3_server: S3Server) -> None:
    worker, expected = ingested(stack, s3_server, 4, seed=44)
    archived = past_retention(expected)
    worker.env["REPLAY_SPILL_INTERVAL_SECONDS"] = "2"
    worker.start()
    wait_until(
        lambda: worker.metric("replay_sessions_archived_total") == len(archived),
        120,
        "the leader's periodic spill",
    )
    assert worker.metric("replay_s3_objects_total") == len(archived)
    worker.stop()
    assert_converged(worker, s3_server, expected)


def test_spill_once_keeps_the_configured_performance_ttl(stack: Stack, s3_server: S3Server) -> None:
    stack.s3_endpoint = s3_server.endpoint
    worker = stack.worker(performance_ttl_days="5")
    worker.log_path.touch()  # never started: the stack's failure report reads it
    out = cli(worker, "spill", "--once")
    assert out.returncode == 0, out.stderr.decode()
    assert b"archived 0 session(s)" in out.stdout
    statement = sql(worker, "SHOW CREATE TABLE performance_events")[0]["statement"]
    assert "toIntervalDay(5)" in statement or "INTERVAL 5 DAY" in statement, statement
