"""Erasure on the stream side, end to end (Tansu + chDB worker): what a worker holds of
an erased session (the pieces of an incomplete set, a person's summary window) is
swept, and what arrives for an erased session or person afterwards (a late last piece,
an items batch, a new session of that person, performance entries) is dropped and
counted, never written, even when it was waiting in the topics before the worker
restarted; the team's other sessions and the person's neighbours are written.

The requests are written straight into the stopped worker's chDB (tests.stack
.record_erasure), as the erasure package records them; deleting what was written
before is the executor's part, not tested here."""

from __future__ import annotations

from streams.topics import ITEMS_TOPIC, PERFORMANCE_TOPIC
from tests import builders
from tests.checks import get, send, wait_for_proof
from tests.stack import WINDOWS, S3Server, Stack, WorkerProcess, record_erasure, wait_until

FAST_TICKS = WINDOWS | {"chunk_expiry_interval_seconds": "1"}


def rows_of(worker: WorkerProcess, table: str, where: str) -> int:
    return int(worker.scalar(f"SELECT count() FROM {table} FINAL WHERE {where}"))


def test_an_erased_session_and_person_are_swept_and_refused_across_a_restart(
    stack: Stack,
) -> None:
    stack.create_topics(ITEMS_TOPIC, PERFORMANCE_TOPIC)
    worker = stack.worker(**FAST_TICKS).start()
    held = builders.pieces_of(builders.events(30), 3, session_id="erased-s")
    stack.produce(
        [
            *held[:2],  # the set waits for its last piece
            builders.capture(session_id="p-1", distinct_id="gone-person"),
            builders.capture(session_id="kept-1", distinct_id="user-1"),
        ]
    )
    wait_until(
        lambda: (
            rows_of(worker, "session_recording_events", "1") == 2
            and worker.metric("replay_chunk_sets_pending") == 1
            and rows_of(worker, "session_replay_events", "session_id = 'p-1'") >= 1
        ),
        90,
        "two batches written, one set held, the person's window flushed",
    )
    worker.stop()
    record_erasure(worker, 1, "session", sessions=["erased-s"])
    record_erasure(worker, 1, "person", distinct_id="gone-person")
    # late data, already in the topics when the worker starts again
    stack.produce(
        [
            held[2],
            builders.capture(session_id="p-2", distinct_id="gone-person"),
            builders.capture(session_id="kept-3", distinct_id="neighbour"),
        ]
    )
    stack.produce(
        [
            builders.items_value(session_id="erased-s"),
            builders.items_value(session_id="kept-2", distinct_id="user-1"),
        ],
        topic=ITEMS_TOPIC,
    )
    stack.produce(
        [
            builders.performance_report(session_id="erased-s"),
            builders.performance_report(session_id="kept-1", pageview_id="pv-kept"),
        ],
        topic=PERFORMANCE_TOPIC,
    )
    worker.start()

    def dropped(stage: str) -> float:
        return worker.metric("replay_erased_dropped_total", stage=stage)

    wait_until(
        lambda: (
            rows_of(worker, "session_recording_events", "session_id LIKE 'kept-%'") == 3
            and rows_of(worker, "performance_events", "session_id = 'kept-1'") == 3
            and (dropped("ingest"), dropped("items"), dropped("performance")) == (2, 1, 3)
            and dropped("reassemble_held") == 2
            and dropped("summarize_held") == 1
        ),
        120,
        "the kept data written, the erased data dropped and the held state swept",
    )
    assert rows_of(worker, "session_recording_events", "session_id IN ('erased-s', 'p-2')") == 0
    assert rows_of(worker, "session_replay_events", "session_id IN ('erased-s', 'p-2')") == 0
    assert rows_of(worker, "performance_events", "session_id = 'erased-s'") == 0
    assert rows_of(worker, "session_recording_events", "distinct_id = 'gone-person'") == 1, (
        "the batch written before the erasure is the executor's to delete; nothing new"
    )
    assert worker.metric("replay_chunk_sets_pending") == 0
    assert worker.metric("replay_dlq_messages_total") == 0, "erased data is no dead letter"
    assert worker.metric("replay_erasure_tombstones") == 2
    summarised = "SELECT uniqExact(session_id) FROM session_replay_events FINAL"
    kept = "session_id IN ('kept-1', 'kept-2', 'kept-3')"
    wait_until(
        lambda: worker.scalar(f"{summarised} WHERE {kept}") == 3, 60, "the kept sessions summarised"
    )


def test_a_session_erased_through_the_api_while_its_pieces_arrive(
    stack: Stack, s3_server: S3Server
) -> None:
    """DELETE on a running worker while a set of the session is held: after the proof,
    nothing of it is in any table or held, its last piece and a later batch are dropped
    and counted, and the team's other sessions (one of the same person) are written."""
    stack.create_topics(ITEMS_TOPIC)
    stack.s3_endpoint = s3_server.endpoint  # erasure looks for the session's objects
    worker = stack.worker(**FAST_TICKS, erasure_poll_seconds="1").start()
    held = builders.pieces_of(builders.events(30), 3, session_id="going", distinct_id="p")
    stack.produce([builders.capture(session_id="going", distinct_id="p"), *held[:2]])
    stack.produce([builders.capture(session_id="staying", distinct_id="p")])
    wait_until(
        lambda: (
            rows_of(worker, "session_recording_events", "1") == 2
            and worker.metric("replay_chunk_sets_pending") == 1
        ),
        90,
        "the batches written and the set held",
    )
    status, answer = send(worker, "DELETE", "/api/teams/1/sessions/going", "write-key-1")
    assert status == 202, answer
    proof = wait_for_proof(worker, answer["url"])
    assert proof["sessions"] == ["going"]
    assert proof["removed"]["session_recording_events"] == 1
    stack.produce([held[2], builders.capture(session_id="going", distinct_id="p")])
    stack.produce([builders.capture(session_id="staying-2", distinct_id="p")])
    wait_until(
        lambda: (
            rows_of(worker, "session_recording_events", "session_id LIKE 'staying%'") == 2
            and worker.metric("replay_chunk_sets_pending") == 0
            and worker.metric("replay_erased_dropped_total", stage="reassemble_held") == 2
            and worker.metric("replay_erased_dropped_total", stage="ingest") >= 2
        ),
        90,
        "the held set swept, the late piece and batch dropped, the others written",
    )
    for table in ("session_recording_events", "session_replay_events", "session_recording_gaps"):
        assert rows_of(worker, table, "session_id = 'going'") == 0, table
    assert get(worker, "/api/teams/1/sessions/going", "read-key-1")[0] == 410
    assert get(worker, "/api/teams/1/sessions/staying", "read-key-1")[0] != 410
