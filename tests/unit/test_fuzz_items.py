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
from streams.items import CV_FIELDS
from streams.models import CONTENT_ENCODING_HEADER
from streams.output import Message, Output
from streams.stages import ItemsStage
from streams.topics import ITEMS_TOPIC
from tests.builders import TS, cv_event, cv_kinds, items_body
from tests.fuzzing import (
    DEPTHS,
    FUZZ,
    JSON,
    TENANTS,
    VALID_TENANTS,
    at_limits,
    bytes_mutated,
    check,
    deepened,
    gzip_bent,
    handle,
    mutated,
    records,
    rrweb_events,
    text_mutated,
)
from tests.pipeline import NOW, SETTINGS, decoder

STAGE = ItemsStage(decoder())  # shared by every example: a bad message must leave it sound
MAX_DECODED = SETTINGS.max_decoded_bytes
ENCODINGS = ("plain", "gzip", "lz4")

# --- valid messages ------------------------------------------------------------------------


@st.composite
def plain_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """rrweb events of any kind, then 0..3 of the kinds posthog-js compresses."""
    events = draw(rrweb_events())
    kinds = draw(st.lists(st.integers(0, 2), max_size=3))
    return events + [cv_kinds(TS + 20 * (n + 1))[kind] for n, kind in enumerate(kinds)]


@st.composite
def sent_events(draw: st.DrawFn, plain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events as posthog-js may send them: each one compressed (`cv`) or not."""
    return [cv_event(e) if draw(st.booleans()) else e for e in plain]


def encode_items(body: Any) -> bytes:
    """The message's plain JSON value, its inner event written into `data` as a JSON
    string (a string cannot carry invalid UTF-8: such bytes are the envelope's to bend)."""
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body | {"data": JSON.encode(body["data"]).decode("utf-8", "replace")}
    return JSON.encode(body)


# --- bent `cv` fields ----------------------------------------------------------------------


def cv_paths(event: Any) -> list[tuple[str, ...]]:
    """Where an event's compressed fields are (empty unless it carries `cv`)."""
    if not isinstance(event, dict) or "cv" not in event:
        return []
    data = event.get("data")
    if event.get("type") == 2:
        return [("data",)]
    if event.get("type") == 3 and isinstance(data, dict) and data.get("source") in CV_FIELDS:
        return [("data", name) for name in CV_FIELDS[data["source"]] if name in data]
    return []


@st.composite
def bent_field(draw: st.DrawFn, field: Any) -> Any:
    """A compressed field bent: not latin-1, not gzip, gzip bent, gzip of bad, deep or
    huge JSON, or not a string at all."""
    inner = _inflated(field)
    kind = draw(st.sampled_from(["latin", "plain", "gzip", "bad", "deep", "huge", "type"]))
    if kind == "latin":
        return field + draw(st.sampled_from(["\u2713", "\U0001f600", "\u0100"]))
    if kind == "plain":
        return inner.decode("utf-8", "replace")
    if kind == "gzip":
        packed = draw(gzip_bent(inner))
    elif kind == "bad":
        packed = gzip.compress(draw(bytes_mutated(inner)), mtime=0)
    elif kind == "deep":
        depth = draw(st.sampled_from(DEPTHS))
        packed = gzip.compress(b"[" * depth + inner + b"]" * depth, mtime=0)
    elif kind == "huge":  # alone past the budget, or two that add up past it
        size = draw(st.sampled_from([MAX_DECODED // 2 + 1, MAX_DECODED + 1]))
        packed = gzip.compress(b'"' + b"a" * size + b'"', mtime=0)
    else:
        return draw(st.sampled_from([None, 1, [], {}, ["x"], True]))
    return packed.decode("latin-1")


@st.composite
def cv_bent(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[Any]:
    """1..2 compressed events bent in a field, in their `cv`, or in any node."""
    events = [*events, cv_event(cv_kinds(TS + 90)[draw(st.integers(0, 2))])]
    compressed = [n for n, e in enumerate(events) if cv_paths(e)]
    for at in draw(st.lists(st.sampled_from(compressed), min_size=1, max_size=2, unique=True)):
        event = events[at]
        how = draw(st.sampled_from(["field", "field", "version", "node"]))
        if how == "field":
            path = draw(st.sampled_from(cv_paths(event)))
            event = _set(event, path, draw(bent_field(_get(event, path))))
        elif how == "version":
            version = draw(st.sampled_from(["2031-01", "", 1, None, "2024-10 ", ["2024-10"]]))
            event = event | {"cv": version}
        else:
            event = draw(mutated(event))
        events[at] = event
    return events


def _inflated(field: Any) -> bytes:
    """The JSON a compressed field holds (what is left of it, once bent already)."""
    text = field.encode("latin-1", "replace") if isinstance(field, str) else b"[]"
    try:
        return gzip.decompress(text)
    except (OSError, EOFError):
        return text


def _get(doc: Any, path: tuple[str, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


def _set(doc: dict[str, Any], path: tuple[str, ...], new: Any) -> dict[str, Any]:
    head, *rest = path
    return doc | {head: _set(doc[head], tuple(rest), new) if rest else new}


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
