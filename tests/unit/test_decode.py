"""Decoding reassembled payloads and summarising their events (pure)."""

from __future__ import annotations

import gzip

import msgspec
import pybase64
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.teams import Team, TeamRegistry
from streams.batches import decode_batch, flag_disagrees
from streams.decode import decode_payload
from streams.dlq import Rejected
from streams.parse import parse_capture
from streams.stats import summarize_events
from tests import builders

REGISTRY = TeamRegistry.of([Team(1, "token-1")])

rrweb_events = st.lists(
    st.fixed_dictionaries(
        {
            "type": st.integers(0, 6),
            "timestamp": st.integers(1_000_000_000_000, 2_000_000_000_000),
            "data": st.dictionaries(
                st.text(max_size=5), st.text(max_size=30) | st.integers(), max_size=3
            ),
        }
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=150, deadline=None)
@given(rrweb_events, st.integers(1, 12), st.randoms(use_true_random=False))
def test_any_cut_of_the_pieces_decodes_to_the_original_bytes(events, parts, rng) -> None:
    """Pieces are cut at any character; decoded one at a time (base64 carried over)."""
    payload = msgspec.json.encode(events)
    messages = builders.pieces_of(events, min(parts, len(builders.encode_events(events))))
    rng.shuffle(messages)
    chunks = sorted(
        (parse_capture(m, REGISTRY, 10**7) for m in messages), key=lambda c: c.chunk_index
    )
    row = decode_batch(iter(chunks), 10**7).row
    assert row.snapshot_data.encode() == payload
    assert row.size == len(payload)
    assert row.event_count == len(events)
    assert row.first_timestamp == min(e["timestamp"] for e in events)
    assert row.last_timestamp == max(e["timestamp"] for e in events)
    assert row.has_full_snapshot == any(e["type"] == 2 for e in events)


@given(st.text(max_size=500))
def test_arbitrary_data_is_rejected_cleanly(data: str) -> None:
    for compression in ("gzip-base64", "none"):
        try:
            summarize_events(decode_payload(data, compression, 10_000))
        except Rejected as rejection:
            assert rejection.reason in {
                "invalid_base64",
                "invalid_gzip",
                "invalid_events",
                "oversized",
            }


def test_gzip_bomb_is_oversized_not_memory() -> None:
    bomb = pybase64.b64encode(gzip.compress(b"[" + b" " * 50_000_000 + b"]")).decode()
    with pytest.raises(Rejected) as info:
        decode_payload(bomb, "gzip-base64", 1_000_000)
    assert info.value.reason == "oversized"


def test_truncated_gzip_is_invalid_gzip() -> None:
    data = pybase64.b64encode(gzip.compress(b"[1,2,3]" * 100)[:-12]).decode()
    with pytest.raises(Rejected) as info:
        decode_payload(data, "gzip-base64", 1_000_000)
    assert info.value.reason == "invalid_gzip"


@pytest.mark.parametrize(
    "payload",
    [
        b"[]",
        b'{"type": 2}',
        b'[{"type": 2}]',
        b'[{"type": 2, "timestamp": 5}]',
        b'[{"type": "x", "timestamp": 1700000000000}]',
    ],
)
def test_events_that_are_not_rrweb_are_invalid_events(payload: bytes) -> None:
    with pytest.raises(Rejected) as info:
        summarize_events(payload)
    assert info.value.reason == "invalid_events"


def test_flag_disagreement_is_detected_from_events() -> None:
    snapshot = builders.snapshot_data(
        data=builders.encode_events(builders.events(full=False)), has_full_snapshot=True
    )
    chunk = parse_capture(builders.capture(snapshot=snapshot), REGISTRY, 10**6)
    row = decode_batch([chunk], 10**6).row
    assert row.has_full_snapshot is False
    assert flag_disagrees(chunk, row)
