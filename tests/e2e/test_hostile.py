"""Hostile input through a running worker, on both input topics, between good traffic.

Each crafted kind below is either dead-lettered with its reason, its original bytes and
its true source (whatever headers it forged), or handled harmlessly as documented in the
README's "Reliability" section; meanwhile every good batch lands exactly, and nothing
the worker produces is larger than Kafka's default 1 MB.
"""

from __future__ import annotations

import asyncio
import gzip
import random
import time
import uuid
from collections import Counter
from typing import Any

import msgspec
import pybase64
from aiokafka.admin import AIOKafkaAdminClient

from replay_ingest.dlq import read_all
from streams.topics import (
    INPUT_TOPICS,
    ITEMS_DLQ_TOPIC,
    PERFORMANCE_DLQ_TOPIC,
    PERFORMANCE_TOPIC,
    REASSEMBLE,
    repartition_topic,
)
from tests import builders
from tests.builders import TS, capture, encode_events, events, snapshot_data
from tests.checks import ROWS_FINAL, assert_rows_match
from tests.stack import CAPTURE, DLQ, PARTITIONS, Stack, wait_until
from tests.workloads import generated

PERF, PERF_DLQ = PERFORMANCE_TOPIC, PERFORMANCE_DLQ_TOPIC
YEAR_MS = 365 * 86_400_000
KAFKA_DEFAULT_MAX = 1_000_000
LIMITS = {
    "max_message_bytes": "600000",
    "max_decoded_bytes": "8000000",
    "max_set_bytes": "5000000",
    "max_record_bytes": "300000",
    "max_open_sets_per_team": "200",
    "summary_flush_interval_seconds": "1",
}
Kind = tuple[str, bytes | None, list[tuple[str, bytes]] | None, str | None]


def _gz64(raw: bytes) -> str:
    return pybase64.b64encode(gzip.compress(raw)).decode()


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _set(chunk_count: int, data: str, **kwargs: Any) -> list[bytes]:
    chunk_id = str(uuid.uuid4())
    return [
        capture(
            snapshot=snapshot_data(
                chunk_id=chunk_id, chunk_index=i, chunk_count=chunk_count, data=data
            ),
            **kwargs,
        )
        for i in range(chunk_count)
    ]


def capture_kinds() -> list[Kind]:
    """(kind, value, headers, expected DLQ reason or None for harmless) on the capture topic."""
    deep_envelope = capture()[:-1] + b', "extra": ' + _nested(50_000) + b"}"
    big_piece = "A" * 350_000
    deep_events = b'[{"type": 3, "timestamp": %d, "data": {"source": %s}}]' % (TS, _nested(50_000))
    forged = [
        ("replay-source-topic", b"secret-internal-topic"),
        ("replay-source-partition", b"9"),
        ("replay-source-offset", b"123"),
        ("dlq-reason", b"none"),
    ]
    kinds: list[Kind] = [
        ("truncated_json", b'{"token": "token-1", "data": ', None, "invalid_json"),
        ("tombstone", None, None, "invalid_json"),
        ("empty_value", b"", None, "invalid_json"),
        ("binary_garbage", bytes(range(256)) * 4, None, "invalid_json"),
        ("deep_envelope", deep_envelope, None, "too_deep"),
        (
            "deep_events",
            capture(snapshot=snapshot_data(data=_gz64(deep_events))),
            None,
            "too_deep",
        ),
        ("missing_token", capture(drop=("token",)), None, "missing_field"),
        ("token_retyped", capture(token=12345), None, "invalid_event"),  # type: ignore[arg-type]
        ("unknown_token", capture(token="who-knows"), None, "unknown_token"),
        ("team_mismatch", capture(token="token-1", team_id=2), None, "team_mismatch"),
        (
            "recording_disabled",
            capture(token="token-disabled", team_id=3),
            None,
            "recording_disabled",
        ),
        ("path_traversal_id", capture(session_id="../../etc/passwd"), None, "invalid_id"),
        ("huge_session_id", capture(session_id="s" * 10_000), None, "invalid_id"),
        ("huge_distinct_id", capture(distinct_id="d" * 10_000), None, "invalid_event"),
        ("chunk_count_zero", capture(snapshot=snapshot_data(chunk_count=0)), None, "invalid_chunk"),
        (
            "chunk_index_negative",
            capture(snapshot=snapshot_data(chunk_index=-1)),
            None,
            "invalid_chunk",
        ),
        (
            "chunk_index_int64_max",
            capture(snapshot=snapshot_data(chunk_index=2**63 - 1, chunk_count=2)),
            None,
            "invalid_chunk",
        ),
        (
            "unsupported_compression",
            capture(snapshot=snapshot_data(compression="br")),
            None,
            "invalid_chunk",
        ),
        ("invalid_base64", capture(snapshot=snapshot_data(data="***")), None, "invalid_base64"),
        ("not_gzip", capture(snapshot=snapshot_data(data="bm90IGd6aXA=")), None, "invalid_gzip"),
        (
            "gzip_bomb",
            capture(snapshot=snapshot_data(data=_gz64(b" " * 20_000_000))),
            None,
            "oversized",
        ),
        (
            "over_message_bound",
            capture(snapshot=snapshot_data(data="A" * 700_000)),
            None,
            "oversized",
        ),
        (
            "events_not_a_list",
            capture(snapshot=snapshot_data(data=_gz64(b'{"a": 1}'))),
            None,
            "invalid_events",
        ),
        (
            "dated_2099",
            capture(snapshot=snapshot_data(data=encode_events(events(start=4_070_908_800_000)))),
            None,
            "implausible_timestamp",
        ),
        (
            "dated_2005",
            capture(snapshot=snapshot_data(data=encode_events(events(start=TS - 21 * YEAR_MS)))),
            None,
            "implausible_timestamp",
        ),
        (
            "timestamp_past_uint64",
            capture(
                snapshot=snapshot_data(
                    data=_gz64(b'[{"type": 2, "timestamp": 18446744073709551617}]')
                )
            ),
            None,
            "invalid_events",
        ),
        ("forged_source_headers", capture(token="who-knows"), forged, "unknown_token"),
        ("piece_over_record_bound", _set(2, big_piece)[0], None, "oversized"),
    ]
    # 17 pieces (4.8 MB) held, the 18th passes 5 MB: all 18 go; the rest find it refused
    kinds += [("set_over_its_byte_bound", p, None, "oversized") for p in _set(20, "A" * 280_000)]
    mismatch = _set(2, "QUFB", session_id="mismatch")
    kinds.append(("chunk_count_mismatch_first", mismatch[0], None, None))  # held until its TTL
    second = capture(
        session_id="mismatch",
        snapshot=msgspec.json.decode(msgspec.json.decode(mismatch[1])["data"])["properties"][
            "snapshot_data"
        ]
        | {"chunk_count": 3},
    )
    kinds.append(("chunk_count_mismatch", second, None, "invalid_chunk"))
    for n in range(201):  # team 2 may hold 200 open sets per partition (one session here)
        first = _set(2, "QUFB", token="token-2", team_id=2, session_id="capped")[0]
        kinds.append(("open_set_cap", first, None, "too_many_open_sets" if n == 200 else None))
    kinds += harmless_capture_kinds()
    return kinds


def harmless_capture_kinds() -> list[Kind]:
    """Crafted, yet well-formed: they are written like any batch (see the README)."""
    members = _gz64(b"[" + b",".join([msgspec.json.encode(e) for e in events(4)][:2]))
    tail = b"," + b",".join(msgspec.json.encode(e) for e in events(4)[2:]) + b"]"
    members = pybase64.b64encode(pybase64.b64decode(members) + gzip.compress(tail)).decode()
    urls = [
        {"type": 4, "timestamp": TS + i, "data": {"href": f"https://x/{i}/" + "a" * 2500}}
        for i in range(600)
    ]
    return [
        ("forged_tick_on_input", capture(session_id="forged-tick"), [("replay-tick", b"1")], None),
        (
            "gzip_members",
            capture(session_id="gzip-members", snapshot=snapshot_data(data=members)),
            None,
            None,
        ),
        (
            "many_long_urls",
            capture(session_id="many-urls", snapshot=snapshot_data(data=encode_events(urls))),
            None,
            None,
        ),
    ]


def performance_kinds(origin: float) -> list[Kind]:
    b = builders.performance_report
    entry = {"name": "ok", "entryType": "paint", "startTime": 1.0, "duration": 0}
    return [
        ("perf_truncated_json", b'{"token": ', None, "invalid_json"),
        ("perf_tombstone", None, None, "invalid_json"),
        ("perf_unknown_token", b(origin, token="nope"), None, "unknown_token"),
        ("perf_too_many_entries", b(origin, entries=[entry] * 10_001), None, "oversized"),
        ("perf_dated_2099", b(4_070_908_800_000.0), None, "implausible_timestamp"),
        ("perf_traversal_id", b(origin, session_id="../x"), None, "invalid_id"),
        (
            "perf_status_out_of_range",
            b(
                origin,
                pageview_id="pv-status",
                entries=[entry, {**entry, "name": "s", "responseStatus": 70_000}],
            ),
            None,
            "invalid_entry",
        ),
        (
            "perf_deep_entry",
            b(origin, pageview_id="pv-deep", entries=[entry, msgspec.Raw(_nested(50_000))]),
            None,
            "too_deep",
        ),
        (
            "perf_negative_size",
            b(
                origin,
                pageview_id="pv-size",
                entries=[entry, {**entry, "name": "n", "transferSize": -1}],
            ),
            None,
            "invalid_entry",
        ),
        (
            "perf_huge_name",
            b(origin, pageview_id="pv-name", entries=[entry, {**entry, "name": "n" * 20_000}]),
            None,
            "invalid_entry",
        ),
    ]


def _produce_interleaved(stack: Stack, topic: str, good: list[bytes], bad: list[Kind]) -> None:
    rng = random.Random(11)
    stream: list[tuple[bytes | None, list[tuple[str, bytes]] | None]] = [(v, None) for v in good]
    for _, value, headers, _ in bad:
        stream.insert(rng.randrange(len(stream) + 1), (value, headers))
    parts = [rng.randrange(PARTITIONS) for _ in stream]
    stack.produce([v for v, _ in stream], parts, topic, [h for _, h in stream])


async def _largest_records(bootstrap: str, skip: set[str]) -> dict[str, int]:
    """The largest record (value + key + headers) of every topic the worker wrote."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t not in skip and "__assignor" not in t]
    finally:
        await admin.close()
    largest = dict.fromkeys(topics, 0)
    for record in await read_all(bootstrap, topics):
        size = len(record.value or b"") + len(record.key or b"")
        size += sum(len(k) + len(v or b"") for k, v in record.headers)
        largest[record.topic] = max(largest[record.topic], size)
    return largest


def test_hostile_input_is_dead_lettered_and_good_rows_stay_exact(stack: Stack) -> None:
    good, truth = generated(20, seed=23, chunk_size=100_000, large_full_snapshots=1)
    assert any(t.chunk_count > 1 for t in truth.values())
    origin = time.time() * 1000 - 86_400_000  # within performance_events' TTL
    good_perf = [builders.performance_report(origin, pageview_id=f"pv-{i}") for i in range(5)]
    bad, bad_perf = capture_kinds(), performance_kinds(origin)
    assert len({k for k, *_ in bad + bad_perf}) >= 25
    worker = stack.worker(**LIMITS).start()
    _produce_interleaved(stack, CAPTURE, good, bad)
    _produce_interleaved(stack, PERF, good_perf, bad_perf)

    harmless = len(harmless_capture_kinds())
    wait_until(lambda: worker.scalar(ROWS_FINAL) >= len(truth) + harmless, 240, "every good batch")
    want = Counter(reason for *_, reason in bad if reason)
    want_perf = Counter(reason for *_, reason in bad_perf if reason)
    letters = stack.consume(DLQ, sum(want.values()), timeout=120)
    perf_letters = stack.consume(PERF_DLQ, sum(want_perf.values()), timeout=120)

    assert Counter(dict(r.headers)["dlq-reason"].decode() for r in letters) == want
    assert Counter(dict(r.headers)["dlq-reason"].decode() for r in perf_letters) == want_perf
    # which of two racing pieces is refused depends on arrival order: any crafted one
    sent = {value for _, value, _, _ in bad} | {b""}
    for record in letters:
        headers = dict(record.headers)
        assert record.value in sent  # the original bytes, untouched
        assert headers["dlq-source-topic"] in (
            CAPTURE.encode(),
            repartition_topic(stack.app_id, REASSEMBLE).encode(),
        )
        assert headers["dlq-source-topic"] != b"secret-internal-topic"
    for record in perf_letters:
        assert dict(record.headers)["dlq-source-topic"] == PERF.encode()

    assert_rows_match(worker, truth, others=True)  # the crafted harmless ones are extra
    assert worker.scalar(ROWS_FINAL) == len(truth) + harmless
    rows = worker.sql(
        "SELECT session_id, event_count FROM session_recording_events FINAL "
        "WHERE session_id IN ('forged-tick', 'gzip-members', 'many-urls') ORDER BY session_id"
    )
    assert [(r["session_id"], r["event_count"]) for r in rows] == [
        ("forged-tick", 3),
        ("gzip-members", 4),
        ("many-urls", 600),
    ]
    urls = wait_until(
        lambda: worker.sql(
            "SELECT all_urls FROM session_replay_summary WHERE session_id = 'many-urls'"
        ),
        60,
        "the many-urls summary",
    )
    assert len(urls[0]["all_urls"]) == 100 and max(map(len, urls[0]["all_urls"])) == 1000
    perf_rows = wait_until(
        lambda: worker.scalar("SELECT count() FROM performance_events FINAL") >= 15 + 3,
        60,
        "good performance rows and the valid entries next to bad ones",
    )
    assert perf_rows and worker.scalar("SELECT count() FROM performance_events FINAL") == 15 + 3
    assert worker.proc is not None and worker.proc.poll() is None, "the worker is still up"

    # (the items DLQ exists, as the `gaps` stage reads it, but no items are sent here)
    skip = {*INPUT_TOPICS, ITEMS_DLQ_TOPIC}
    largest = asyncio.run(_largest_records(stack.broker.bootstrap, skip))
    print(f"largest record per topic the worker wrote: {largest}")
    produced = {t: n for t, n in largest.items() if not t.endswith("_dlq")}
    assert min(largest.values()) > 0, "every topic the worker writes was read"
    assert max(produced.values()) <= KAFKA_DEFAULT_MAX
    # a letter is its original (every input here is under 1 MB) plus bounded headers
    biggest_input = max(len(v or b"") for _, v, _, _ in bad + bad_perf)
    letters_max = max(v for t, v in largest.items() if t.endswith("_dlq"))
    assert letters_max <= min(KAFKA_DEFAULT_MAX, biggest_input + 20_000)
