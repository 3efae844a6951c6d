"""Erasure end to end on Tansu + chDB + moto: a person erased across the hot and the cold
tier (rows, summary, performance entries, S3 objects, archive index), the proof, 410 on
every read, who may erase; a worker killed mid-erasure completes it on restart; the CLI
erases in-process while no worker runs (request validation and statements alone:
tests/unit/test_erasure.py)."""

from __future__ import annotations

import time

from streams.topics import PERFORMANCE_TOPIC
from tests.builders import capture, encode_events, events, performance_report, snapshot_data
from tests.checks import cli, dlq, get, send, sql, wait_for_proof
from tests.stack import CAPTURE, DLQ, WINDOWS, S3Server, Stack, WorkerProcess, wait_until

DAY_MS = 86_400_000
TABLES = (
    "session_recording_events",
    "session_replay_events",
    "performance_events",
    "session_recording_archive_parts",
    "session_recording_archive",
)
# person -> their sessions, each (days ago it was recorded, batches)
PEOPLE = {
    "person-x": {"px-old": 10, "px-new": 0},
    "person-y": {"py-old": 10, "py-new": 0},
}
BATCHES = 2


def recordings() -> tuple[list[bytes], list[bytes]]:
    """Capture messages of every session (BATCHES batches each; the old ones past team 1's
    7-day retention) and one performance report per recent session."""
    now = int(time.time() * 1000)
    messages, reports = [], []
    for person, sessions in PEOPLE.items():
        for session, days in sessions.items():
            start = now - days * DAY_MS - 60_000
            for n in range(BATCHES):
                batch = events(4, full=n == 0, start=start + n * 1000)
                data = snapshot_data(data=encode_events(batch), has_full_snapshot=n == 0)
                messages.append(capture(session_id=session, distinct_id=person, snapshot=data))
            if days == 0:
                reports.append(performance_report(session_id=session, distinct_id=person))
    return messages, reports


def started(stack: Stack, s3: S3Server, **overrides: str) -> WorkerProcess:
    stack.s3_endpoint = s3.endpoint
    stack.create_topics(PERFORMANCE_TOPIC)
    return stack.worker(**WINDOWS, erasure_poll_seconds="1", **overrides).start()


def ingest(stack: Stack, worker: WorkerProcess) -> None:
    """Record every session, then spill the old ones to S3 (the worker stopped: chDB)."""
    messages, reports = recordings()
    stack.produce(messages)
    stack.produce(reports, topic=PERFORMANCE_TOPIC)
    wait_until(
        lambda: (
            worker.scalar("SELECT sum(message_count) FROM session_replay_summary") == len(messages)
            and worker.scalar("SELECT count() FROM performance_events") > 0
        ),
        120,
        "every session summarised and the performance entries written",
    )
    worker.stop()
    out = cli(worker, "spill")
    assert out.returncode == 0, out.stderr.decode()
    assert b"archived 2 session(s)" in out.stdout


def held(worker: WorkerProcess, sessions: list[str]) -> dict[str, int]:
    """Rows per table (FINAL) of the sessions."""
    ids = ", ".join(f"'{s}'" for s in sessions)
    counts = ", ".join(
        f"(SELECT count() FROM {t} FINAL WHERE session_id IN ({ids})) AS {t}" for t in TABLES
    )
    return {t: int(n) for t, n in sql(worker, f"SELECT {counts}")[0].items()}


def test_a_person_erased_from_every_tier_with_proof_and_410(
    stack: Stack, s3_server: S3Server
) -> None:
    worker = started(stack, s3_server)
    ingest(stack, worker)
    keys = set(s3_server.objects())
    assert len(keys) == 2
    before_x = held(worker, ["px-old", "px-new"])
    before_y = held(worker, ["py-old", "py-new"])
    assert all(before_x.values()) and all(before_y.values()), (before_x, before_y)
    worker.start()

    path = "/api/teams/1/deletions"
    person = {"distinct_id": "person-x"}
    assert send(worker, "POST", path, "read-key-1", person)[0] == 403
    assert send(worker, "POST", path, "write-key-2", person)[0] == 401
    assert send(worker, "POST", path, None, person)[0] == 401
    assert send(worker, "DELETE", "/api/teams/1/sessions/py-new", "read-key-1")[0] == 403
    assert send(worker, "POST", path, "write-key-1", {"distinct_id": 7})[0] == 400
    both = {"before": "2026-01-01", "distinct_id": "a"}
    assert send(worker, "POST", path, "write-key-1", both)[0] == 400

    status, accepted = send(worker, "POST", path, "write-key-1", person)
    assert status == 202 and accepted["state"] == "requested", accepted
    assert get(worker, accepted["url"], "read-key-1")[0] == 403
    proof = wait_for_proof(worker, accepted["url"])

    x_keys = {k for k in keys if "session_id=px-old." in k}
    assert set(proof["sessions"]) == {"px-old", "px-new"}
    assert set(proof["s3_keys"]) == x_keys and len(x_keys) == 1
    assert proof["removed"]["s3_objects"] == 1
    assert {t: proof["removed"][t] for t in TABLES} == before_x
    assert proof["completed_at"] and proof["kind"] == "person"

    assert set(s3_server.objects()) == keys - x_keys  # the neighbour's object stays
    assert held(worker, ["px-old", "px-new"]) == dict.fromkeys(TABLES, 0)
    assert held(worker, ["py-old", "py-new"]) == before_y
    person_rows = "SELECT count() AS n FROM performance_events WHERE distinct_id = 'person-x'"
    assert worker.scalar(person_rows) == 0

    for session in ("px-old", "px-new"):
        for tail in ("", "/snapshots", "/network", "/player", "/events"):
            status, body = get(worker, f"/api/teams/1/sessions/{session}{tail}", "read-key-1")
            assert status == 410, (session, tail, body)
    assert get(worker, "/api/teams/1/sessions/py-new", "read-key-1")[0] == 200
    assert get(worker, "/api/teams/1/sessions/py-old/network", "read-key-1")[0] == 200


def test_a_worker_killed_mid_erasure_completes_it_on_restart(
    stack: Stack, s3_server: S3Server
) -> None:
    worker = started(stack, s3_server)
    ingest(stack, worker)
    before_x = held(worker, ["px-old", "px-new"])
    before_y = held(worker, ["py-old", "py-new"])
    worker.env["REPLAY_ERASURE_CRASH_AFTER"] = "delete"
    worker.start()

    status, accepted = send(
        worker, "POST", "/api/teams/1/deletions", "write-key-1", {"distinct_id": "person-x"}
    )
    assert status == 202, accepted
    assert worker.proc is not None
    wait_until(lambda: worker.proc is not None and worker.proc.poll() is not None, 60, "the kill")
    assert worker.proc.returncode == -9
    # killed after its first delete: the objects and the raw rows gone, the rest still there
    half = held(worker, ["px-old", "px-new"])
    assert half["session_recording_events"] == 0 and half["session_replay_events"] > 0, half
    state = sql(worker, "SELECT toString(state) AS s FROM session_recording_deletions FINAL")
    assert [r["s"] for r in state] == ["running"]

    del worker.env["REPLAY_ERASURE_CRASH_AFTER"]
    worker.start()
    proof = wait_for_proof(worker, accepted["url"])
    assert {t: proof["removed"][t] for t in TABLES} == before_x  # the whole request's
    assert proof["removed"]["s3_objects"] == 1
    assert held(worker, ["px-old", "px-new"]) == dict.fromkeys(TABLES, 0)
    assert held(worker, ["py-old", "py-new"]) == before_y
    assert not [k for k in s3_server.objects() if "session_id=px-" in k]


def test_the_cli_erases_in_process_while_no_worker_runs(stack: Stack, s3_server: S3Server) -> None:
    worker = started(stack, s3_server)
    ingest(stack, worker)
    before = held(worker, ["py-new"])

    dry = cli(worker, "delete", "--team", "1", "--session", "py-new", "--dry-run")
    assert dry.returncode == 0, dry.stderr.decode()
    assert b"would erase 1 session(s)" in dry.stdout
    assert held(worker, ["py-new"]) == before  # nothing changed

    bad = cli(worker, "delete", "--team", "1", "--session", "not/an/id")
    assert bad.returncode == 2

    out = cli(worker, "delete", "--team", "1", "--before", "2000-01-01")
    assert out.returncode == 0, out.stderr.decode()
    assert b"sessions: (none)" in out.stdout  # nothing of team 1 started before 2000

    out = cli(worker, "delete", "--team", "1", "--session", "py-new")
    assert out.returncode == 0, out.stderr.decode()
    assert b"done at" in out.stdout and b"py-new" in out.stdout
    assert held(worker, ["py-new"]) == dict.fromkeys(TABLES, 0)
    kept = held(worker, ["px-new"])  # a hot session: no archive rows
    assert all(kept[t] for t in TABLES[:3]), kept

    # dead letters cannot be deleted from Kafka: the DLQ tools skip the erased ones
    stack.create_topics(DLQ)
    letter = {"dlq-reason": "too_old", "dlq-stage": "validate", "dlq-source-topic": CAPTURE}
    headers = [[(k, v.encode()) for k, v in letter.items()]] * 2
    values = [capture(session_id=s, distinct_id="someone") for s in ("py-new", "px-new")]
    stack.produce(values, topic=DLQ, headers=headers)
    listing = dlq(worker.env, "list")
    assert "1 dead letter(s)" in listing and "1 skipped: of an erased session" in listing
    replayed = dlq(worker.env, "replay", "--reason", "too_old", "--dry-run")
    assert "would replay 1 dead letter(s)" in replayed, replayed
    assert "1 skipped: of an erased session or person" in replayed
