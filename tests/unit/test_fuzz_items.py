"""Fuzz of the `$snapshot_items` input (topic session_recording_snapshot_item_events):
ItemsStage answers every bent message with exactly one row or one dead letter with a
known reason, never an exception, and the letter carries the message as it came (bytes,
source, headers). Messages start valid (tests.builders.items_body, rrweb events of every
kind, some compressed per event as posthog-js does, `cv`) and are bent at every layer:
the events, their `cv` fields (not latin-1, not gzip, gzip of bad or deep JSON, bombs),
the inner `data` JSON as a document or as text, the envelope, the value's bytes, its
encoding (plain, gzip, lz4 with corrupt blocks or lying length prefixes) and the
`content-encoding` header (missing, wrong, forged). A good message after any bent ones
still makes the exact row a fresh stage makes of it: a bad message leaves no state.
"""

from __future__ import annotations

import gzip
from typing import Any

import lz4.block
import msgspec
from hypothesis import given
from hypothesis import strategies as st

from sinks.clickhouse.schema import SNAPSHOT_COLUMNS
from streams.models import CONTENT_ENCODING_HEADER
from streams.output import Message, Output
from streams.stages import ItemsStage
from streams.topics import ITEMS_TOPIC
from tests.builders import items_body
from tests.fuzzing import (
    FUZZ,
    JSON,
    MAX_DECODED,
    TENANTS,
    VALID_TENANTS,
    at_limits,
    bytes_mutated,
    check,
    cv_bent,
    deepened,
    gzip_bent,
    handle,
    mutated,
    plain_events,
    records,
    sent_events,
    text_mutated,
)
from tests.pipeline import NOW, decoder

STAGE = ItemsStage(decoder())  # shared by every example: a bad message must leave it sound
ENCODINGS = ("plain", "gzip", "lz4")

# --- valid messages ------------------------------------------------------------------------


def encode_items(body: Any) -> bytes:
    """The message's plain JSON value, its inner event written into `data` as a JSON
    string (a string cannot carry invalid UTF-8: such bytes are the envelope's to bend)."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body | {"data": JSON.encode(body["data"]).decode("utf-8", "replace")}
    return JSON.encode(body)


# --- bent messages -------------------------------------------------------------------------

LAYERS = (
    *("none", "none", "events", "cv", "cv", "inner", "inner-bytes", "envelope"),
    *("limits", "deep", "bytes", "null"),
)


@st.composite
def items_values(draw: st.DrawFn) -> bytes | None:
    """A message's plain value, maybe bent at one layer."""
    _, token = draw(st.sampled_from(VALID_TENANTS * 3 + TENANTS))  # (the token decides)
    events: Any = draw(sent_events(draw(plain_events())))
    layer = draw(st.sampled_from(LAYERS))
    if layer == "null":
        return None  # a tombstone
    if layer == "events":
        events = draw(mutated(events))
    if layer == "cv":
        events = draw(cv_bent(events))
    uuid = draw(st.sampled_from(["batch-1", "batch-2", None]))
    body: Any = items_body(token=token, items=events, uuid=uuid)
    if layer == "inner":
        body = body | {"data": draw(mutated(body["data"]))}
    if layer == "inner-bytes":
        body = body | {"data": draw(text_mutated(JSON.encode(body["data"]).decode()))}
    if layer == "envelope":
        body = draw(mutated(body))
    if layer == "deep":
        body = draw(deepened(body))
    if layer == "limits":
        body = draw(at_limits(body))
    raw = encode_items(body)
    return draw(bytes_mutated(raw)) if layer == "bytes" else raw


LZ4 = ((CONTENT_ENCODING_HEADER, b"lz4"),)
WRONG_ENCODINGS = (None, b"", b"gzip", b"br", b" LZ4 ", b"lz4\x00", b"\xff\xfe", b"lz4" * 2000)


@st.composite
def encoded(draw: st.DrawFn, value: bytes | None) -> tuple[bytes | None, tuple[Any, ...]]:
    """The value in an encoding (plain, gzip, lz4), maybe bent, with its content-encoding
    header: the right one, missing, wrong, forged, or twice."""
    encoding = draw(st.sampled_from(ENCODINGS)) if value is not None else "plain"
    bend = draw(st.sampled_from(["none", "none", "value", "header"]))
    headers: tuple[Any, ...] = LZ4 if encoding == "lz4" else ()
    if encoding == "gzip":
        assert value is not None
        value = draw(gzip_bent(value)) if bend == "value" else gzip.compress(value, mtime=0)
    if encoding == "lz4":
        assert value is not None
        value = draw(lz4_bent(value) if bend == "value" else st.just(lz4_wrapped(value)))
    if bend == "header":
        wrong = st.tuples(st.just(CONTENT_ENCODING_HEADER), st.sampled_from(WRONG_ENCODINGS))
        choices = [(), LZ4, (draw(wrong),), (draw(wrong), *LZ4), (*LZ4, draw(wrong))]
        headers = draw(st.sampled_from(choices))
    return value, headers


def lz4_wrapped(value: bytes) -> bytes:
    """PostHog's lz4 wrapping: a 4-byte little-endian length, then one block."""
    return len(value).to_bytes(4, "little") + lz4.block.compress(value, store_size=False)


@st.composite
def lz4_bent(draw: st.DrawFn, value: bytes) -> bytes:
    """An lz4 value with a corrupt block or a lying length prefix (short, long, past
    the bound, the largest uint32), or cut inside its prefix."""
    wrapped = lz4_wrapped(value)
    kind = draw(st.sampled_from(["block", "length", "short"]))
    if kind == "block":
        return wrapped[:4] + draw(bytes_mutated(wrapped[4:]))
    if kind == "short":
        return wrapped[: draw(st.integers(0, 3))]
    lie = st.sampled_from([0, 1, len(value) - 1, len(value) + 1, MAX_DECODED + 1, 2**32 - 1])
    size = draw(lie | st.integers(0, 2**32 - 1))
    return max(size, 0).to_bytes(4, "little") + wrapped[4:]


@st.composite
def items_messages(draw: st.DrawFn) -> Message:
    """A bent message in a Kafka record: its encoding headers first, then noise (null
    values, forged source and tick headers)."""
    value, encoding_headers = draw(encoded(draw(items_values())))
    message = draw(records(ITEMS_TOPIC, value))
    return message._replace(headers=(*encoding_headers, *message.headers))


@st.composite
def good_messages(draw: st.DrawFn) -> tuple[Message, list[dict[str, Any]]]:
    """A valid message in any encoding (events maybe compressed), and its plain events."""
    plain = draw(plain_events())
    value = encode_items(items_body(items=draw(sent_events(plain)), uuid="good"))
    encoding = draw(st.sampled_from(ENCODINGS))
    if encoding == "gzip":
        value = gzip.compress(value, mtime=0)
    headers = LZ4 if encoding == "lz4" else ()
    if encoding == "lz4":
        value = lz4_wrapped(value)
    return Message(ITEMS_TOPIC, 0, 1, b"session-1", value, headers), plain


# --- properties ----------------------------------------------------------------------------


def answered_once(out: Output, message: Message) -> None:
    """One row with its statistics, or one dead letter with a known reason that carries
    the message as it came; nothing forwarded, nothing held."""
    check(out, message, columns=len(SNAPSHOT_COLUMNS), input_topic=True, silent=False)
    assert len(out.rows) + len(out.letters) == 1, "one message is one batch"
    assert len(out.stats) == len(out.rows)
    assert not (out.forwards or out.after)
    for letter in out.letters:
        assert letter.original.key == message.key
    for row in out.rows:
        (origin,) = row.origin
        assert origin.value == message.value and origin.headers == message.headers


@FUZZ
@given(items_messages())
def test_items_answers_every_bent_message_with_a_row_or_a_letter(message: Message) -> None:
    answered_once(handle(STAGE, message, NOW), message)


@FUZZ
@given(st.lists(items_messages(), min_size=1, max_size=3), good_messages())
def test_a_good_message_after_bent_ones_makes_its_exact_row(
    bent: list[Message], good: tuple[Message, list[dict[str, Any]]]
) -> None:
    """The shared stage (which has seen every bent message of the run) makes the row a
    fresh stage makes, holding exactly the plain events."""
    message, plain = good
    (expected,) = ItemsStage(decoder()).handle(message, NOW).rows
    for one in bent:
        answered_once(handle(STAGE, one, NOW), one)
        out = STAGE.handle(message, NOW)
        assert not out.letters, [letter.rejection for letter in out.letters]
        (row,) = out.rows
        assert row.values == expected.values
        stored = row.values[SNAPSHOT_COLUMNS.index("snapshot_data")]
        assert msgspec.json.decode(stored) == plain
