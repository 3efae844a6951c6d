"""The `$snapshot_items` input end to end (Tansu + chDB worker): duplicated and shuffled
items messages (plain, gzip, lz4, `cv`-compressed events, some without `$window_id`)
across partitions, through a kill -9 of the worker mid-stream, leave exactly the sent
events per session, once; every row equals its truth, every summary the reference's;
a hostile items message goes to the items topic's own DLQ."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from typing import Any

import msgspec

from replay_ingest.generator.capture import BatchTruth
from replay_ingest.generator.items import ENCODINGS, ItemsOptions, ItemsRecord, generate_items
from streams.topics import ITEMS_DLQ_TOPIC, ITEMS_TOPIC
from tests import builders, reference, workloads
from tests.checks import ROWS_FINAL, assert_rows_match, assert_summaries, wait_for_summary
from tests.stack import PARTITIONS, WINDOWS, Stack, wait_until

RETENTION_DAYS = 7  # team 1's, in tests.stack.TEAMS


def workload(
    sessions: int, seed: int
) -> tuple[list[ItemsRecord], dict[str, BatchTruth], dict[str, list[dict[str, Any]]]]:
    """Items messages of every kind, the truth of each row, and per session the plain
    events that were sent (decoded by tests/reference.py, not by the pipeline)."""
    opts = workloads.options(sessions, seed, **workloads.SMALL_BATCHES)
    options = ItemsOptions(encodings=ENCODINGS, cv_rate=0.4, no_window_rate=0.2, seed=seed)
    records, truth = [], {}
    sent: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for record, batch in generate_items(opts, options):
        records.append(record)
        truth[batch.chunk_id] = batch
        events = reference.items_events_of(record.value, record.headers)
        sent[batch.session_id].append({"truth": msgspec.structs.asdict(batch), "events": events})
    return records, truth, sent


def shuffled(records: list[ItemsRecord], seed: int) -> tuple[list[ItemsRecord], list[int]]:
    """15% of the messages twice, everything shuffled, random partitions."""
    rng = random.Random(seed)
    stream = records + rng.sample(records, len(records) * 15 // 100)
    rng.shuffle(stream)
    return stream, [rng.randrange(PARTITIONS) for _ in stream]


def canonical(events: list[dict[str, Any]]) -> list[str]:
    return sorted(json.dumps(event, sort_keys=True) for event in events)


def test_items_exactly_once_through_kill_9(stack: Stack) -> None:
    records, truth, sent = workload(12, seed=71)
    assert sum(r.value[:2] == b"\x1f\x8b" for r in records) > 0
    assert any(("content-encoding", b"lz4") in r.headers for r in records)
    assert any(t.window_id == t.session_id for t in truth.values())
    stream, partitions = shuffled(records, seed=71)
    stack.create_topics(ITEMS_TOPIC)
    worker = stack.worker(take_max_messages="20", **WINDOWS).start()

    def produce(part: slice) -> None:
        values = [r.value for r in stream[part]]
        stack.produce(values, partitions[part], ITEMS_TOPIC, [r.headers for r in stream[part]])

    half = len(stream) // 2
    produce(slice(0, half))
    wait_until(lambda: worker.scalar(ROWS_FINAL) > 0, 120, "rows before the kill")
    worker.kill9()  # mid-stream: the first half is still being handled
    produce(slice(half, None))
    bad, _ = builders.wrapped(builders.items_value(token="nope"), "gzip")
    stack.produce([bad], [0], ITEMS_TOPIC)
    worker.start()

    wait_until(lambda: worker.scalar(ROWS_FINAL) >= len(truth), 240, "every batch row")
    summaries = {
        session: reference.session_summary(batches) | {"retention_days": RETENTION_DAYS}
        for session, batches in sent.items()
    }
    wait_for_summary(worker, summaries)
    assert_rows_match(worker, truth)  # each uuid once, its events by their hash
    assert worker.scalar(ROWS_FINAL) == len(truth)
    stored: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in worker.sql("SELECT session_id, snapshot_data FROM session_recording_events FINAL"):
        stored[row["session_id"]] += json.loads(row["snapshot_data"])
    assert set(stored) == set(sent)
    for session, batches in sent.items():
        sent_events = [event for batch in batches for event in batch["events"]]
        assert canonical(stored[session]) == canonical(sent_events), session
    assert_summaries(worker, summaries)

    (letter,) = stack.consume(ITEMS_DLQ_TOPIC, 1)
    headers = dict(letter.headers)
    assert letter.value == bad and headers["dlq-reason"] == b"unknown_token"
    assert headers["dlq-source-topic"] == ITEMS_TOPIC.encode()
    assert worker.metric("replay_dlq_messages_total") == 1
