"""Retention and the S3 cold tier end to end on Tansu + chDB + moto's S3 server: the
spill, including kill -9 between steps and S3 being down (late rows, failing sessions,
bounded reads: test_archive_parts.py; S3 down mid-spill: test_archive_faults.py; keys
and event order: tests/unit/test_archive.py)."""

from __future__ import annotations

import gzip
import hashlib
import json
from datetime import timedelta
from typing import Any

import pybase64
import pytest
import zstandard

from tests.builders import capture, snapshot_data
from tests.checks import cli, get, key_of, lines_of, sql, urlopen_text
from tests.stack import (
    WINDOWS,
    Ingest,
    S3Server,
    Stack,
    WorkerProcess,
    archived_pairs,
    wait_until,
)
from tests.workloads import NOW, past_retention


def assert_converged(
    worker: WorkerProcess, s3: S3Server, expected: dict[str, dict[str, Any]]
) -> None:
    archived = past_retention(expected)
    stored = s3.objects()
    assert set(stored) == {key_of(s, expected[s]["start"]) for s in archived}
    windows, digests = {}, {}
    for session_id in archived:
        blob = stored[key_of(session_id, expected[session_id]["start"])]
        pairs = archived_pairs(lines_of(blob))
        assert [event for _, event in pairs] == expected[session_id]["events"]
        windows[session_id] = {window for window, _ in pairs}
        assert "" not in windows[session_id]  # each event kept the window of its batch
        text = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
        digests[session_id] = hashlib.sha256(text).hexdigest()
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
    assert {s: len(windows[s]) for s in archived} == {
        s: summary[s]["window_count"] for s in archived
    }
    assert all(summary[s]["event_count"] == len(expected[s]["events"]) for s in expected)
    index = sql(
        worker,
        "SELECT session_id, toString(state) AS state, event_count, key, sha256 "
        "FROM session_recording_archive FINAL",
    )
    assert {r["session_id"]: r["state"] for r in index} == dict.fromkeys(archived, "complete")
    assert all(r["event_count"] == len(expected[r["session_id"]]["events"]) for r in index)
    assert {r["session_id"]: r["sha256"] for r in index} == digests  # one part each


def test_spill_archives_past_retention_and_both_tiers_read_the_same(
    ingested: Ingest, s3_server: S3Server
) -> None:
    worker, expected = ingested(14, seed=41)
    archived = past_retention(expected)
    assert 0 < len(archived) < len(expected)

    out = cli(worker, "spill")
    assert out.returncode == 0, out.stderr.decode()
    assert f"archived {len(archived)} session(s)" in out.stdout.decode()
    assert_converged(worker, s3_server, expected)

    again = cli(worker, "spill")
    assert b"archived 0 session(s)" in again.stdout
    assert len(s3_server.objects()) == len(archived)

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


@pytest.mark.parametrize("step", ["object", "upload", "delete"])
def test_spill_killed_between_steps_converges(
    ingested: Ingest, s3_server: S3Server, step: str
) -> None:
    worker, expected = ingested(6, seed=42)
    assert past_retention(expected)

    crashed = cli(worker, "spill", REPLAY_SPILL_CRASH_AFTER=step)
    assert crashed.returncode == -9, crashed.stderr.decode()
    index = sql(worker, "SELECT toString(state) AS state FROM session_recording_archive FINAL")
    # killed on the first session: its object stored, and indexed unless killed before
    assert [r["state"] for r in index] == ([] if step == "object" else ["uploaded"])
    assert len(s3_server.objects()) == 1

    out = cli(worker, "spill")
    assert out.returncode == 0, out.stderr.decode()
    assert_converged(worker, s3_server, expected)


def test_s3_down_deletes_nothing_and_the_next_run_completes(
    ingested: Ingest, s3_server: S3Server
) -> None:
    worker, expected = ingested(5, seed=43)
    rows = sql(worker, "SELECT count() AS n FROM session_recording_events FINAL")[0]["n"]

    down = cli(
        worker,
        "spill",
        REPLAY_S3_ENDPOINT_URL="http://127.0.0.1:9",
        REPLAY_S3_RETRY_SECONDS="2",
    )
    assert down.returncode == 1 and b"S3 unavailable" in down.stderr
    assert sql(worker, "SELECT count() AS n FROM session_recording_events FINAL")[0]["n"] == rows
    assert sql(worker, "SELECT count() AS n FROM session_recording_archive")[0]["n"] == 0

    out = cli(worker, "spill")
    assert out.returncode == 0, out.stderr.decode()
    assert_converged(worker, s3_server, expected)


def test_worker_spills_on_its_own_timer(ingested: Ingest, s3_server: S3Server) -> None:
    worker, expected = ingested(4, seed=44)
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


def newline_batches(start: int) -> list[tuple[str, str]]:
    """(window_id, events JSON) of two batches whose events hold raw LF, CR LF and CR
    bytes between their tokens (valid JSON), and an escaped newline inside a string."""
    return [
        (
            "window-a",
            f'[{{"type":4,"timestamp":{start},\n"data":{{"href":"https://example.com/"}}}},\n'
            f'{{"type":2,\r\n"timestamp":{start + 1},"data":{{"node":{{"id":1}}}}}}]',
        ),
        (
            "window-b",
            f'[{{"type":3,"timestamp":{start + 2},"data":\r{{"source":5,"text":"a\\nb"}}}}]',
        ),
    ]


def test_events_with_raw_newlines_read_as_one_line_each_from_both_tiers(
    stack: Stack, s3_server: S3Server
) -> None:
    start = int((NOW - timedelta(days=10)).timestamp() * 1000)
    batches = newline_batches(start)
    events = [event for _, text in batches for event in json.loads(text)]
    assert all(b"\n" in text.encode() or b"\r" in text.encode() for _, text in batches)
    stack.s3_endpoint = s3_server.endpoint
    worker = stack.worker(**WINDOWS).start()
    stack.produce(
        [
            capture(
                session_id="newlines",
                window_id=window_id,
                snapshot=snapshot_data(
                    data=pybase64.b64encode(gzip.compress(text.encode())).decode()
                ),
            )
            for window_id, text in batches
        ]
    )
    wait_until(
        lambda: worker.scalar("SELECT sum(message_count) FROM session_replay_summary") == 2,
        180,
        "both batches summarised",
    )
    stored_text = worker.scalar(
        "SELECT arrayStringConcat(groupArray(snapshot_data)) FROM session_recording_events"
    )
    assert "\r\n" in stored_text  # kept byte for byte, as the bug needs

    def snapshots() -> list[Any]:
        text = urlopen_text(worker, "/api/teams/1/sessions/newlines/snapshots")
        return [json.loads(line) for line in text.splitlines()]  # CR would split it too

    assert snapshots() == events  # from ClickHouse
    worker.stop()
    out = cli(worker, "spill")
    assert out.returncode == 0, out.stderr.decode()
    assert "archived 1 session(s)" in out.stdout.decode()
    (blob,) = s3_server.objects().values()
    pairs = archived_pairs(lines_of(blob))
    assert pairs == [(w, e) for w, text in batches for e in json.loads(text)]
    got = cli(worker, "sessions", "get", "--team", "1", "--session", "newlines")
    assert [json.loads(line) for line in got.stdout.splitlines()] == events
    worker.start()
    assert snapshots() == events  # from S3
