"""A request's batches as Kafka records: `$snapshot_items` messages under the limit, in
order, nothing lost; a single event over the limit as chunked pieces the worker's parser
accepts and reassembles; uuids that a retry of the same body reproduces."""

from __future__ import annotations

import json
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from capture.records import CHUNKED_FORMAT, ITEMS_FORMAT, Record
from capture.refusal import Refused
from capture.shapes import Snapshot, parse_plain, parse_posthog
from capture.writer import Origin, write
from config.teams import Team, TeamRegistry
from streams.decode import decode_pieces
from streams.models import ITEMS_EVENT, ITEMS_HEADERS, ItemsEvent, ItemsMessage
from streams.parse import parse_capture
from streams.stages import RECORD_HEADROOM
from streams.topics import CAPTURE_TOPIC, ITEMS_TOPIC
from tests.builders import cv_event, cv_string
from tests.capture_server import rrweb_events, snapshot_event

ORIGIN = Origin("token-1", 1, "2026-10-26T08:53:21.000Z", 1_793_004_801_000)
REGISTRY = TeamRegistry.of([Team(1, "token-1")])
MAX_DECODED = 10**8


def snapshots(body: list[dict[str, Any]]) -> list[Snapshot]:
    return parse_posthog(json.dumps(body).encode()).snapshots


def items_of(record: Record) -> tuple[ItemsMessage, ItemsEvent]:
    message = msgspec.json.decode(record.value, type=ItemsMessage)
    return message, msgspec.json.decode(message.data, type=ItemsEvent)


def chunked_event(pieces: list[Record]) -> list[Any]:
    chunks = sorted(
        (parse_capture(r.value, REGISTRY, 10**8) for r in pieces), key=lambda c: c.chunk_index
    )
    assert [c.chunk_index for c in chunks] == list(range(chunks[0].chunk_count))
    assert len({c.chunk_id for c in chunks}) == 1
    return json.loads(decode_pieces([c.data for c in chunks], "gzip-base64", 10**8))


def events_written(records: list[Record]) -> list[Any]:
    """The events of the records, in record order (a chunked set as one event)."""
    out: list[Any] = []
    pending: list[Record] = []
    for record in records:
        if record.format == CHUNKED_FORMAT:
            pending.append(record)
            if len(pending) == parse_capture(record.value, REGISTRY, 10**8).chunk_count:
                out.extend(chunked_event(pending))
                pending = []
            continue
        out.extend(json.loads(bytes(item)) for item in items_of(record)[1].properties.items)
    assert not pending
    return out


def test_one_small_batch_is_one_items_message_with_posthogs_headers() -> None:
    events = rrweb_events(5)
    [record] = write(
        snapshots([snapshot_event(events, event_uuid="e-1")]), ORIGIN, 1_000_000, MAX_DECODED
    )
    assert (record.topic, record.key, record.format) == (ITEMS_TOPIC, b"session-1", ITEMS_FORMAT)
    message, event = items_of(record)
    assert (message.token, message.event, message.distinct_id) == ("token-1", ITEMS_EVENT, "user-1")
    assert message.timestamp == 1_793_004_800_000 and message.now == ORIGIN.now_iso
    props = event.properties
    assert event.event == ITEMS_EVENT
    assert (props.session_id, props.window_id, props.snapshot_source, props.lib) == (
        "session-1",
        "window-1",
        "web",
        "web",
    )
    assert props.distinct_id == "user-1"
    assert [json.loads(bytes(i)) for i in props.items] == events
    headers = dict(record.headers)
    assert tuple(headers) == ITEMS_HEADERS
    assert headers["uuid"].decode() == message.uuid and headers["session_id"] == b"session-1"
    assert headers["timestamp"] == b"1793004800000" and headers["event"] == ITEMS_EVENT.encode()


def test_batches_are_grouped_by_session_window_in_order() -> None:
    body = [
        snapshot_event(rrweb_events(3), window_id="w-a"),
        snapshot_event(rrweb_events(2, start=2), session_id="s-2"),
        snapshot_event(rrweb_events(4, start=9), window_id="w-a"),
    ]
    records = write(snapshots(body), ORIGIN, 1_000_000, MAX_DECODED)
    assert [r.key for r in records] == [b"session-1", b"s-2"]
    first = items_of(records[0])[1].properties
    assert first.window_id == "w-a" and len(first.items) == 7


def test_a_large_batch_is_cut_at_event_boundaries_under_the_limit() -> None:
    events = rrweb_events(400)
    records = write(snapshots([snapshot_event(events)]), ORIGIN, 8_000, MAX_DECODED)
    assert len(records) > 3 and all(r.format == ITEMS_FORMAT for r in records)
    assert all(r.size <= 8_000 for r in records)
    assert events_written(records) == events
    assert len({items_of(r)[0].uuid for r in records}) == len(records)


def test_a_single_event_over_the_limit_becomes_chunked_pieces_that_reassemble() -> None:
    events = rrweb_events(6, pad=60_000)  # the full snapshot alone is over the limit
    records = write(snapshots([snapshot_event(events)]), ORIGIN, 20_000, MAX_DECODED)
    chunked = [r for r in records if r.format == CHUNKED_FORMAT]
    assert len(chunked) >= 2 and {r.topic for r in chunked} == {CAPTURE_TOPIC}
    assert all(r.size <= 20_000 - RECORD_HEADROOM for r in chunked)
    chunk = parse_capture(chunked[0].value, REGISTRY, 10**8)
    assert (chunk.team_id, chunk.session_id, chunk.window_id) == (1, "session-1", "window-1")
    assert chunk.producer_full_snapshot is True and chunk.distinct_id == "user-1"
    assert chunked_event(chunked) == [events[1]]
    assert events_written(records) == events  # before and after it, items messages


def test_an_oversized_cv_event_is_written_chunked_with_its_fields_inflated() -> None:
    """The chunked format carries plain events (the worker inflates `cv` only on the
    items input): a large compressed full snapshot arrives plain either way."""
    events = rrweb_events(4, pad=60_000)
    sent = [events[0], cv_event(events[1]), *events[2:]]
    records = write(snapshots([snapshot_event(sent)]), ORIGIN, 20_000, MAX_DECODED)
    chunked = [r for r in records if r.format == CHUNKED_FORMAT]
    assert len(chunked) >= 2
    assert chunked_event(chunked) == [events[1]]  # `cv` gone, `data` an object again
    assert events_written(records) == events


@pytest.mark.parametrize(
    ("field", "status"),
    [("not gzip", 400), (cv_string("a" * 2_000_000), 413)],
    ids=["broken", "bomb"],
)
def test_an_oversized_event_with_a_bad_cv_field_is_refused(field: str, status: int) -> None:
    full_snapshot = rrweb_events(2)[1]
    event = {**full_snapshot, "data": field, "padding": "x" * 30_000, "cv": "2024-10"}
    with pytest.raises(Refused) as refused:
        write(snapshots([snapshot_event([event])]), ORIGIN, 20_000, 1_000_000)
    assert refused.value.status == status


def test_uuids_come_from_the_content_so_a_retry_repeats_them() -> None:
    body = [snapshot_event(rrweb_events(300, pad=30_000), event_uuid="e-1")]
    first = write(snapshots(body), ORIGIN, 10_000, MAX_DECODED)
    later = Origin("token-1", 1, "2026-10-26T09:00:00.000Z", 1_793_005_200_000)
    again = write(snapshots(body), later, 10_000, MAX_DECODED)
    assert [r.value for r in first] != [r.value for r in again]  # `now` differs
    assert [_identity(r) for r in first] == [_identity(r) for r in again]
    other = [snapshot_event(rrweb_events(300, pad=30_000), event_uuid="e-2")]
    assert not {_identity(r) for r in first} & {
        _identity(r) for r in write(snapshots(other), ORIGIN, 10_000, MAX_DECODED)
    }
    plain = json.dumps(rrweb_events(5)).encode()
    one = write([parse_plain(plain, "s-1", "w-1", "")], ORIGIN, 10_000, MAX_DECODED)
    two = write([parse_plain(plain, "s-1", "w-1", "")], ORIGIN, 10_000, MAX_DECODED)
    three = write([parse_plain(plain, "s-1", "w-2", "")], ORIGIN, 10_000, MAX_DECODED)
    assert _identity(one[0]) == _identity(two[0]) != _identity(three[0])


def _identity(record: Record) -> str:
    if record.format == ITEMS_FORMAT:
        return str(items_of(record)[0].uuid)
    return str(msgspec.json.decode(record.value)["uuid"])


_text = st.text(alphabet=st.sampled_from('ab"\\\u00e9\u2028\n\x01<'), max_size=3000)
_event = st.builds(
    lambda kind, ts, text: {"type": kind, "timestamp": ts, "data": {"text": text}},
    st.sampled_from([2, 3, 4, 6]),
    st.integers(0, 2**45),
    _text,
)


@settings(max_examples=150, deadline=None)
@given(
    batches=st.lists(st.lists(_event, min_size=1, max_size=12), min_size=1, max_size=4),
    limit=st.integers(1_500, 12_000),
)
def test_any_batches_any_limit_nothing_lost_none_over(
    batches: list[list[dict[str, Any]]], limit: int
) -> None:
    body = [snapshot_event(events, event_uuid=f"e-{i}") for i, events in enumerate(batches)]
    records = write(snapshots(body), ORIGIN, limit, MAX_DECODED)
    assert all(r.size <= limit for r in records)
    assert events_written(records) == [event for events in batches for event in events]
