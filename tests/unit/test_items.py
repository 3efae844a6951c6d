"""The `$snapshot_items` input (PostHog's current format) on its own, without Kafka: one
message in every value encoding and with posthog-js's per-event compression becomes one
row and its statistics (streams.items through streams.stages.ItemsStage); every hostile
message is a dead letter with its reason, and the good message after it still makes its
row; the generator's items messages become exactly their truth."""

from __future__ import annotations

import gzip
import hashlib
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from replay_ingest.generator.items import ENCODINGS, ItemsOptions, generate_items
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS
from streams.items import parse_items
from streams.output import Message, Output
from streams.stages import ItemsStage
from streams.topics import ITEMS, ITEMS_TOPIC
from tests import builders, workloads
from tests.pipeline import NOW, REGISTRY, SETTINGS, decoder

STAGE = ItemsStage(decoder())
MAX_DECODED = SETTINGS.max_decoded_bytes


def message(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Message:
    return Message(ITEMS_TOPIC, 1, 5, b"session-1", value, tuple(headers or ()))


def handle(value: bytes | None, headers: list[tuple[str, bytes]] | None = None) -> Output:
    return STAGE.handle(message(value, headers), NOW)


def row_of(out: Output) -> dict[str, Any]:
    assert not out.letters, [letter.rejection for letter in out.letters]
    (row,) = out.rows
    return dict(zip(SNAPSHOT_COLUMNS, row.values, strict=True))


def stored_events(out: Output) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = msgspec.json.decode(row_of(out)["snapshot_data"])
    return events


def encoded(encoding: str, **kwargs: Any) -> tuple[bytes, list[tuple[str, bytes]]]:
    return builders.wrapped(builders.items_value(**kwargs), encoding)


# --- good messages ------------------------------------------------------------------------


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_value_encoding_makes_the_same_row_and_statistics(encoding: str) -> None:
    events = builders.events(5)
    value, headers = encoded(encoding, items=events, uuid="batch-1")
    out = handle(value, headers)
    row = row_of(out)
    assert row["snapshot_data"].encode() == msgspec.json.encode(events)
    assert (row["team_id"], row["session_id"], row["window_id"]) == (1, "session-1", "window-1")
    assert (row["chunk_id"], row["chunk_count"], row["distinct_id"]) == ("batch-1", 1, "user-1")
    assert (row["event_count"], row["has_full_snapshot"]) == (5, True)
    (stats,) = out.stats
    assert stats.chunk_id == "batch-1" and stats.figures.message_count == 1
    assert stats.figures.retention_days == 7 and stats.figures.window_ids == ["window-1"]
    assert out.newest_ms == row["last_timestamp"] == max(e["timestamp"] for e in events)


def test_the_lz4_header_is_read_in_any_case_and_a_gzip_value_needs_none() -> None:
    value, _ = encoded("lz4")
    assert row_of(handle(value, [("content-encoding", b" LZ4 ")]))["event_count"] == 3
    value, _ = encoded("gzip")
    assert row_of(handle(value, [("content-encoding", b"gzip")]))["event_count"] == 3


@pytest.mark.parametrize("kind", [0, 1, 2], ids=["full_snapshot", "mutation", "stylesheet"])
def test_a_cv_event_of_each_kind_is_stored_decompressed_without_cv(kind: int) -> None:
    plain = builders.cv_kinds()[kind]
    out = handle(builders.items_value(items=[builders.cv_event(plain)]))
    (stored,) = stored_events(out)
    assert stored == plain and "cv" not in stored
    assert row_of(out)["has_full_snapshot"] is (kind == 0)


def test_events_without_cv_are_stored_byte_for_byte() -> None:
    odd = b'{ "timestamp" : 1793000000005,"type":3, "data":{"source":1,"text":"cv"} }'
    data = b'{"event":"$snapshot_items","properties":{"$session_id":"s","$snapshot_items":['
    data += odd + b"," + msgspec.json.encode(builders.events(1)[0]) + b"]}}"
    value = msgspec.json.encode({"token": "token-1", "distinct_id": "d", "data": data.decode()})
    row = row_of(handle(value))
    assert row["snapshot_data"].encode().startswith(b"[" + odd + b",")


def test_a_missing_window_id_is_the_session_id_and_distinct_id_falls_back() -> None:
    value = builders.items_value(window_id=None, distinct_id=None)
    value = value.replace(b'"token"', b'"distinct_id":"from-envelope","token"', 1)
    row = row_of(handle(value))
    assert row["window_id"] == "session-1" and row["distinct_id"] == "from-envelope"


def test_without_uuid_the_batch_id_is_a_hash_the_same_in_any_encoding() -> None:
    value = builders.items_value(uuid=None, items=builders.events(4))
    ids = {row_of(handle(*builders.wrapped(value, e)))["chunk_id"] for e in ENCODINGS}
    (chunk_id,) = ids
    assert chunk_id.startswith("sha256-")
    other = builders.items_value(uuid=None, items=builders.events(5))
    assert row_of(handle(other))["chunk_id"] != chunk_id


def test_the_team_comes_from_the_token_with_its_retention() -> None:
    out = handle(builders.items_value(token="token-2", team_id=1))
    assert row_of(out)["team_id"] == 2
    assert out.stats[0].figures.retention_days == 30


# --- hostile messages, each next to a good one ----------------------------------------------


def gzip_bomb() -> bytes:
    return gzip.compress(b" " * (MAX_DECODED + 10))


def cv_bomb() -> bytes:
    bomb = {"type": 2, "timestamp": builders.TS, "data": "", "cv": "2024-10"}
    bomb["data"] = gzip.compress(b'"' + b"a" * (MAX_DECODED + 10) + b'"').decode("latin-1")
    return builders.items_value(items=[bomb])


def lying_lz4() -> tuple[bytes, list[tuple[str, bytes]]]:
    value, headers = encoded("lz4")
    return (len(value) // 2).to_bytes(4, "little") + value[4:], headers


def deep() -> bytes:
    nested = "[" * 100_000 + "]" * 100_000
    data = '{"event":"$snapshot_items","properties":{"$session_id":"s","$snapshot_items":['
    return msgspec.json.encode({"token": "token-1", "data": data + nested + "]}}"})


Y2099 = 4_070_908_800_000
HOSTILE: list[tuple[str, Any, str]] = [
    ("tombstone", None, "invalid_json"),
    ("not_json", b"{nope", "invalid_json"),
    ("bad_gzip", b"\x1f\x8b\x08\x00garbage", "invalid_gzip"),
    ("truncated_gzip", gzip.compress(builders.items_value())[:-12], "invalid_gzip"),
    ("gzip_bomb", gzip_bomb(), "oversized"),
    ("lz4_lying_length", lying_lz4(), "invalid_lz4"),
    (
        "lz4_length_past_limit",
        (b"\xff\xff\xff\x7f" + b"x" * 20, [("content-encoding", b"lz4")]),
        "oversized",
    ),
    ("lz4_too_short", (b"\x01", [("content-encoding", b"lz4")]), "invalid_lz4"),
    (
        "lz4_not_a_block",
        (b"\x10\x00\x00\x00" + b"\xff" * 8, [("content-encoding", b"lz4")]),
        "invalid_lz4",
    ),
    ("cv_bomb", cv_bomb(), "oversized"),
    ("unknown_token", builders.items_value(token="nope"), "unknown_token"),
    ("disabled_team", builders.items_value(token="token-off"), "recording_disabled"),
    ("missing_session_id", builders.items_value(session_id=None), "missing_field"),
    ("unsafe_session_id", builders.items_value(session_id="../etc"), "invalid_id"),
    ("bad_uuid", builders.items_value(uuid="a/b"), "invalid_id"),
    ("missing_token", builders.items_value(token=None), "missing_field"),
    ("nested_too_deep", deep(), "too_deep"),
    (
        "year_2099",
        builders.items_value(items=builders.events(3, start=Y2099)),
        "implausible_timestamp",
    ),
    ("empty_items", builders.items_value(items=[]), "invalid_events"),
    ("wrong_event", builders.items_value(event="$snapshot"), "invalid_event"),
    ("not_events", builders.items_value(items=[1, "x"]), "invalid_events"),
    (
        "unknown_cv",
        builders.items_value(
            items=[{**builders.cv_event(builders.cv_kinds()[0]), "cv": "2031-01"}]
        ),
        "invalid_events",
    ),
    (
        "cv_field_not_gzip",
        builders.items_value(
            items=[{"type": 2, "timestamp": builders.TS, "data": "plain", "cv": "2024-10"}]
        ),
        "invalid_gzip",
    ),
    (
        "cv_field_not_latin1",
        builders.items_value(
            items=[{"type": 2, "timestamp": builders.TS, "data": "✓", "cv": "2024-10"}]
        ),
        "invalid_events",
    ),
    (
        "cv_field_not_a_string",
        builders.items_value(
            items=[{"type": 2, "timestamp": builders.TS, "data": {}, "cv": "2024-10"}]
        ),
        "invalid_events",
    ),
    (
        "cv_field_not_json",
        builders.items_value(
            items=[
                {
                    "type": 2,
                    "timestamp": builders.TS,
                    "cv": "2024-10",
                    "data": gzip.compress(b"{x").decode("latin-1"),
                }
            ]
        ),
        "invalid_events",
    ),
    (
        "cv_field_too_deep",
        builders.items_value(
            items=[
                {
                    "type": 2,
                    "timestamp": builders.TS,
                    "cv": "2024-10",
                    "data": gzip.compress(b"[" * 100_000 + b"]" * 100_000).decode("latin-1"),
                }
            ]
        ),
        "too_deep",
    ),
    ("too_long_message", b" " * (SETTINGS.max_message_bytes + 1), "oversized"),
]


@pytest.mark.parametrize(("value", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_message_is_a_dead_letter_and_the_next_good_one_its_row(
    value: Any, reason: str
) -> None:
    raw, headers = value if isinstance(value, tuple) else (value, [])
    bad = handle(raw, headers)
    assert not (bad.rows or bad.stats)
    (letter,) = bad.letters
    assert letter.rejection.reason == reason, letter.rejection
    assert letter.rejection.error
    assert letter.original.value == raw and letter.original.source.topic == ITEMS_TOPIC
    assert dict(letter.original.headers) == dict(headers)
    good_value, good_headers = encoded("lz4", uuid="after")
    assert row_of(handle(good_value, good_headers))["chunk_id"] == "after"


def test_cv_fields_of_one_message_share_one_budget() -> None:
    half = {"type": 2, "timestamp": builders.TS, "cv": "2024-10"}
    half["data"] = builders.cv_string("a" * (MAX_DECODED // 2 + 10))
    alone = parse_items(builders.items_value(items=[half]), None, REGISTRY, 10**7, MAX_DECODED)
    assert alone.ids.session_id == "session-1"
    out = handle(builders.items_value(items=[half, {**half, "timestamp": builders.TS + 1}]))
    assert [letter.rejection.reason for letter in out.letters] == ["oversized"]
    assert out.letters[0].rejection.stage == "decode" and STAGE.name == ITEMS


# --- properties and the generator -----------------------------------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=8),
    st.sampled_from(ENCODINGS),
)
def test_any_mix_of_encodings_decodes_to_the_plain_events(
    kinds: list[tuple[int, bool]], encoding: str
) -> None:
    plain = [
        {**builders.cv_kinds(builders.TS + 100 * i)[kind], "n": i}
        for i, (kind, _) in enumerate(kinds)
    ]
    sent = [builders.cv_event(e) if cv else e for e, (_, cv) in zip(plain, kinds, strict=True)]
    value, headers = encoded(encoding, items=sent)
    assert stored_events(handle(value, headers)) == plain
    expected = row_of(handle(builders.items_value(items=plain)))["snapshot_data"]
    assert row_of(handle(value, headers))["snapshot_data"] == expected


def test_generated_items_messages_become_exactly_their_truth() -> None:
    opts = workloads.options(3, 5, **workloads.SMALL_BATCHES)
    options = ItemsOptions(encodings=ENCODINGS, cv_rate=0.5, no_window_rate=0.3)
    seen = {"cv": 0, "no_window": 0, "lz4": 0, "gzip": 0}
    for record, truth in generate_items(opts, options):
        out = STAGE.handle(
            Message(ITEMS_TOPIC, 0, 0, record.key, record.value, tuple(record.headers)),
            truth.last_timestamp / 1000 + 60,
        )
        row = row_of(out)
        assert hashlib.sha256(row["snapshot_data"].encode()).hexdigest() == truth.sha256
        for name in ("chunk_id", "window_id", "event_count", "size", "first_timestamp"):
            assert row[name] == getattr(truth, name), name
        seen["no_window"] += truth.window_id == truth.session_id
        seen["cv"] += b"2024-10" in (
            gzip.decompress(record.value) if record.value[:2] == b"\x1f\x8b" else record.value
        )
        seen["lz4"] += ("content-encoding", b"lz4") in record.headers
        seen["gzip"] += record.value[:2] == b"\x1f\x8b"
        assert record.key == truth.session_id.encode()
    assert all(seen.values()), seen
