"""The commands as a user runs them: generate -> produce -> worker -> sql, and `spill`
(`run`, and its rows staying after any stop: test_run.py)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

from replay_ingest.localstack import free_port
from tests.checks import replay
from tests.stack import AWS, CAPTURE, S3Server, Stack, wait_until


def test_generate_produce_and_query_like_a_user(stack: Stack, tmp_path: Path) -> None:
    worker = stack.worker().start()
    env = worker.env
    capture, truth = tmp_path / "capture.jsonl", tmp_path / "truth.jsonl"
    replay(
        env,
        "generate",
        "--sessions",
        "6",
        "--seed",
        "4",
        "--chunk-size",
        "40000",
        "--token",
        "token-1",
        "--incremental-count-mean",
        "6",
        "--truth",
        str(truth),
        "-o",
        str(capture),
        check=True,
    )
    produced = replay(env, "produce", "--topic", CAPTURE, str(capture), check=True)
    lines = capture.read_bytes().count(b"\n")
    assert f"{lines} messages" in produced.stderr
    expected = {row["chunk_id"]: row for row in map(json.loads, truth.read_text().splitlines())}

    def rows() -> list[dict]:
        out = replay(
            env,
            "sql",
            "--format",
            "jsonl",
            "SELECT chunk_id, event_count, has_full_snapshot FROM session_recording_events FINAL",
            check=True,
        ).stdout
        return [json.loads(line) for line in out.splitlines()]

    wait_until(lambda: len(rows()) == len(expected), 120, "the generated batches")
    for row in rows():
        truth_row = expected[row["chunk_id"]]
        assert (row["event_count"], row["has_full_snapshot"]) == (
            truth_row["event_count"],
            truth_row["has_full_snapshot"],
        )
    refused = replay(env, "sql", "DROP TABLE session_recording_events", check=False)
    assert refused.returncode == 1 and "SELECT" in refused.stderr
    table = replay(
        env, "sql", "--format", "table", "SELECT 1 AS one", check=True
    ).stdout.splitlines()
    assert table[0].strip() == "one" and table[2].strip() == "1"


def test_spill_runs_one_pass_and_keeps_the_configured_performance_ttl(
    tmp_path: Path, s3_server: S3Server
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env |= {
        "REPLAY_DATA_DIR": str(tmp_path / "data"),
        "REPLAY_WEB_PORT": str(free_port()),  # no worker: the CLI opens chDB itself
        "REPLAY_S3_ENDPOINT_URL": s3_server.endpoint,
        "REPLAY_PERFORMANCE_TTL_DAYS": "3",
        "AWS_ACCESS_KEY_ID": AWS["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": AWS["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": AWS["region_name"],
    }
    assert "archived 0 session(s)" in replay(env, "spill", check=True).stdout
    out = replay(
        env,
        "sql",
        "--format",
        "jsonl",
        "SELECT engine_full FROM system.tables WHERE name = 'performance_events'",
        check=True,
    ).stdout
    assert re.findall(r"toIntervalDay\((\d+)\)", json.loads(out)["engine_full"]) == ["3"]
