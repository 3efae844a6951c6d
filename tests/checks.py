"""Reads and assertions against the real parts the end-to-end tests run: a worker (its
rows, its summary, its HTTP API, the CLI next to it), the S3 objects it spilled, and a
chDB database opened in the test's own process."""

from __future__ import annotations

import json
import subprocess
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from typing import Any

import zstandard

from replay_ingest.generator.capture import BatchTruth
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect
from sinks.s3_keys import session_key
from sinks.sql_guard import query_read_only
from tests.stack import PREFIX, WorkerProcess, wait_until

# --- batch rows ---------------------------------------------------------------------------

COMPARED = [c for c in SNAPSHOT_COLUMNS if c != "snapshot_data"]
ROWS_FINAL = "SELECT count() FROM session_recording_events FINAL"
ROW_FIELDS = (
    "SELECT team_id, distinct_id, session_id, window_id, chunk_id, chunk_count, "
    "toUnixTimestamp64Milli(first_timestamp) AS first_timestamp, "
    "toUnixTimestamp64Milli(last_timestamp) AS last_timestamp, has_full_snapshot, "
    "event_count, size, lower(hex(SHA256(snapshot_data))) AS sha256 "
    "FROM session_recording_events FINAL"
)


def assert_rows_match(
    worker: WorkerProcess, truth: dict[str, BatchTruth], *, others: bool = False
) -> None:
    """Every batch row equals its truth (its events by their hash), once per chunk_id;
    `others`: rows of other batches (crafted ones) may be there too."""
    rows = {row["chunk_id"]: row for row in worker.sql(ROW_FIELDS)}
    if others:
        assert set(truth) <= set(rows)
    else:
        assert set(rows) == set(truth)
    for chunk_id, expected in truth.items():
        row = rows[chunk_id]
        for name in (*COMPARED, "sha256"):
            assert row[name] == getattr(expected, name), (chunk_id, name)


# --- the session summary ----------------------------------------------------------------

SUMMARY = "SELECT * FROM session_replay_summary"


def summaries(worker: WorkerProcess) -> dict[str, dict[str, Any]]:
    return {row["session_id"]: row for row in worker.sql(SUMMARY)}


def wait_for_summary(worker: WorkerProcess, expected: dict[str, dict[str, Any]]) -> None:
    """Until the summary counts every message of the expected sessions (and no more)."""
    want = sum(e["message_count"] for e in expected.values())
    counted: list[Any] = []  # shown on failure: short of `want`, or past it

    def covered() -> bool:
        counted.append(worker.scalar("SELECT sum(message_count) FROM session_replay_summary"))
        return bool(counted[-1] == want)

    try:
        wait_until(covered, 300, f"summary covering {want} messages")
    except AssertionError as exc:
        raise AssertionError(f"{exc}; the summary counted {counted[-1]}") from None


def assert_summaries(worker: WorkerProcess, expected: dict[str, dict[str, Any]]) -> None:
    """Every session's summary row equals the reference's, figure by figure."""
    got = summaries(worker)
    assert set(got) == set(expected)
    for session_id, want in expected.items():
        row = dict(got[session_id])
        for name in ("start_time", "end_time"):
            row[name] = round(epoch_ms(row[name]))
        for name, value in want.items():
            assert row[name] == value, (session_id, name, row[name], value)


def epoch_ms(text: str) -> float:
    """A DateTime as ClickHouse prints it (naive means UTC), in epoch milliseconds."""
    moment = datetime.fromisoformat(text)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000


# --- the worker's HTTP API and the CLI next to it --------------------------------------


def get(worker: WorkerProcess, path: str, key: str | None) -> tuple[int, Any]:
    """(status, JSON body) of a GET on the worker's web server, with `key` as Bearer."""
    return send(worker, "GET", path, key)


def urlopen_text(worker: WorkerProcess, path: str, key: str = "read-key-1") -> str:
    """The body of a GET that must succeed (a streamed one: JSON lines)."""
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}")
    request.add_header("Authorization", f"Bearer {key}")
    with urllib.request.urlopen(request, timeout=60) as response:
        return str(response.read().decode())


def cli(worker: WorkerProcess, *args: str, **env: str) -> subprocess.CompletedProcess[bytes]:
    """`replay-ingest ARGS` in the worker's environment (plus `env`), not checked."""
    return subprocess.run(
        [sys.executable, "-m", "replay_ingest", *args],
        env=worker.env | env,
        capture_output=True,
        timeout=300,
    )


def replay(
    env: dict[str, str], *args: str, check: bool = False
) -> subprocess.CompletedProcess[str]:
    """`replay-ingest ARGS` as a user runs it, with `env`; output as text."""
    return subprocess.run(
        [sys.executable, "-m", "replay_ingest", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=check,
    )


def dlq(env: dict[str, str], *args: str) -> str:
    """`replay-ingest dlq ARGS` with `env`: its output (an error fails the test)."""
    out = replay(env, "dlq", *args)
    assert out.returncode == 0, out.stderr
    return out.stdout


def sql(worker: WorkerProcess, query: str) -> list[dict[str, Any]]:
    """Rows of a query through the CLI (which opens chDB itself while no worker runs)."""
    out = cli(worker, "sql", "--format", "jsonl", query)
    assert out.returncode == 0, out.stderr.decode()
    return [json.loads(line) for line in out.stdout.splitlines()]


# --- the S3 archive ----------------------------------------------------------------------


def lines_of(blob: bytes) -> list[Any]:
    """The JSON lines of one archived object (zstd)."""
    text = zstandard.ZstdDecompressor().decompressobj().decompress(blob)
    return [json.loads(line) for line in text.splitlines()]


def key_of(session_id: str, start_ms: int) -> str:
    """The object key of a session of team 1 that started at `start_ms`."""
    start = datetime.fromtimestamp(start_ms / 1000, UTC)
    return session_key(PREFIX, 1, session_id, start)


# --- a chDB database in this process ---------------------------------------------------


def rows_in(url: str, chunk_prefix: str) -> int:
    """Batch rows (FINAL) whose chunk_id starts with `chunk_prefix`."""
    _, rows = query_read_only(
        connect(url),
        f"SELECT count() FROM {SNAPSHOT_TABLE} FINAL WHERE startsWith(chunk_id, '{chunk_prefix}')",
    )
    return int(rows[0][0])


# --- erasure -------------------------------------------------------------------------------


def send(
    worker: WorkerProcess, method: str, path: str, key: str | None, body: Any = None
) -> tuple[int, Any]:
    """(status, JSON body) of a request on the worker's web server, with `key` as
    Bearer and `body` as JSON."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{worker.web_port}{path}", data=data, method=method
    )
    if key is not None:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def wait_for_proof(worker: WorkerProcess, url: str, key: str = "write-key-1") -> dict[str, Any]:
    """The proof of a deletion once the worker has carried it out (fails at a deadline)."""

    def done() -> dict[str, Any] | None:
        status, proof = get(worker, url, key)
        assert status == 200, proof
        return proof if proof["state"] == "done" else None

    return wait_until(done, 90, f"deletion {url} done")
