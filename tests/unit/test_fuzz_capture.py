"""Fuzz of the capture request path as the pure chain the intake runs: decode_body (raw
bytes, content type, `?compression=`, the decoded bound) -> parse_posthog or
parse_plain -> the token's team -> write (the records, under the message limit).

Every bent body is answered with records or with Refused 400 or 413, never with another
exception (the server would answer 500, and posthog-js retries that forever). Bodies
start as what clients send (posthog-js's `/s/` arrays, single events and `{api_key,
batch}` with other events among the recordings; plain rrweb arrays), events of every
kind, some `cv`-compressed, some heavier than a message (written in the chunked format),
and are bent at every layer: the rrweb events, their `cv` fields, the event properties,
the body document, its bytes, its encoding (gzip, form base64, JSON) and the request's
content type and compression. Every record written is within the limit, and the worker
can read it: items records carry every event sent, and parse with
streams.items.parse_items or are refused by it with a dead-letter reason (an event's
`cv` fields are the worker's to inflate: a bad one is dead-lettered with the original
bytes, replayable, rather than refused here); chunked pieces parse with
streams.parse.parse_capture and put together make the one event they carry.
"""

from __future__ import annotations

import gzip
import random
import re
import string
from collections import defaultdict
from typing import Any, NamedTuple
from urllib.parse import quote

import msgspec
import pybase64
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from capture.body import FORM_TYPE, decode_body
from capture.records import CHUNKED_FORMAT, ITEMS_FORMAT, Record
from capture.refusal import Refused
from capture.shapes import Parsed, parse_plain, parse_posthog
from capture.writer import Origin, write
from streams.decode import decode_pieces
from streams.dlq import REASONS, Rejected
from streams.items import parse_items
from streams.models import CONTENT_ENCODING_HEADER, Chunk, ItemsEvent, ItemsMessage
from streams.parse import parse_capture
from streams.stages import RECORD_HEADROOM
from tests.builders import TS, cv_string
from tests.capture_server import other_event, snapshot_event
from tests.fuzzing import (
    FUZZ,
    JSON,
    MAX_DECODED,
    at_limits,
    bytes_mutated,
    cv_bent,
    deepened,
    gzip_bent,
    mutated,
    plain_events,
    sent_events,
    text_mutated,
)
from tests.pipeline import REGISTRY

ORIGIN_ISO, ORIGIN_MS = "2026-10-26T08:53:21.000Z", TS + 1000
# a message limit that cuts batches (and chunks a heavy event), and Kafka's default
LIMITS = (4_096, 20_000, 1_000_000)
TOKENS = ("token-1", "token-1", "token-1", "token-2", "token-off", "token-9", "")
# full snapshots of 3 KB to 300 KB of text gzip cannot shrink much: over some limits
HEAVY = tuple(
    {
        "type": 2,
        "timestamp": TS + 5,
        "data": {
            "node": {"id": 1, "text": "".join(random.Random(n).choices(string.ascii_letters, k=n))}
        },
    }
    for n in (3_000, 30_000, 300_000)
)


class Request(NamedTuple):
    """What the intake hands the chain: the body and how it says it is encoded; for the
    plain intake, the path's and query's ids and the bearer token."""

    raw: bytes
    content_type: str
    compression: str
    plain: tuple[str, str, str, str] | None  # (session, window, distinct, token)
    max_bytes: int


# --- bodies ------------------------------------------------------------------------------


@st.composite
def batches(draw: st.DrawFn) -> list[Any]:
    """One batch of rrweb events as a client sends it, maybe with a heavy one."""
    events: list[Any] = draw(sent_events(draw(plain_events())))
    if draw(st.integers(0, 3)) == 0:
        heavy = draw(st.sampled_from(HEAVY))
        events.insert(draw(st.integers(0, len(events))), heavy)
    return events


BATCH_LAYERS = ("events", "cv", "cv", "deep-events", "limits")
DOCUMENT_LAYERS = ("properties", "body", "deep")
LAYERS = (
    *("none", "none", "none", *BATCH_LAYERS, *DOCUMENT_LAYERS),
    *("bytes", "encoding", "request", "ids", "tokens", "timestamp"),
)
# posthog-js's event `timestamp` at the ends of what ISO 8601 and datetime can say
ISO_EDGES = (
    *("0001-01-01", "0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59.999999-23:59"),
    *("1970-01-01T00:00:00Z", "2026-10-26T08:53:20+25:00", "2026-02-30", "", "nan", "\x00"),
)


@st.composite
def bent_batch(draw: st.DrawFn, events: list[Any], layer: str) -> Any:
    """The batch bent in its events or their `cv` fields, by layer (else as it is)."""
    if layer == "events":
        return draw(mutated(events))
    if layer == "cv":
        return draw(cv_bent(events))
    if layer == "deep-events":
        return draw(deepened(events))
    return draw(at_limits(events)) if layer == "limits" else events


@st.composite
def plain_documents(draw: st.DrawFn, layer: str) -> Any:
    """The plain intake's body as a document: one batch, maybe bent."""
    return draw(bent_batch(draw(batches()), layer))


@st.composite
def posthog_documents(draw: st.DrawFn, layer: str) -> Any:
    """posthog-js's body as a document: an array (`/s/`), one event, or `{api_key,
    batch}`; `$snapshot` events of one token (or, bent, another's too), other events;
    one batch maybe bent."""
    token = draw(st.sampled_from(TOKENS))
    count = draw(st.integers(1, 3))
    bent = draw(st.integers(0, count - 1))
    snapshots = []
    for n in range(count):
        events = draw(batches())
        snapshot = snapshot_event(
            events,
            token="token-2" if layer == "tokens" and n == bent else token,
            session_id=draw(st.sampled_from(["session-1", "session-2"])),
            window_id=draw(st.sampled_from(["window-1", "window-2"])),
            event_uuid=f"e-{n}",
        )
        if n == bent:
            snapshot["properties"]["$snapshot_data"] = draw(bent_batch(events, layer))
        if n == bent and layer == "timestamp":
            snapshot["timestamp"] = draw(st.sampled_from(ISO_EDGES))
        snapshots.append(snapshot)
    others = [other_event(token=token) | {"uuid": f"o-{n}"} for n in range(draw(st.integers(0, 2)))]
    events = draw(st.permutations(snapshots + others))
    if layer == "properties":
        at = events.index(snapshots[bent])
        events[at] = events[at] | {"properties": draw(mutated(events[at]["properties"]))}
    shape = draw(st.sampled_from(["array", "array", "single", "batch"]))
    if shape == "single":
        return events[0]
    if shape == "batch":
        return {"api_key": draw(st.sampled_from([token, None])), "batch": events}
    return events


@st.composite
def bent_document(draw: st.DrawFn, doc: Any, layer: str) -> Any:
    """A body document bent anywhere or deep down, by layer (else as it is)."""
    if layer == "body":
        return draw(mutated(doc))
    return draw(deepened(doc)) if layer == "deep" else doc


ODD_IDS = ("", "../etc", "a" * 201, "\u202e", "a b", "x" * 1001, "\x00")


@st.composite
def plain_ids(draw: st.DrawFn, layer: str) -> tuple[str, str, str, str]:
    """The plain intake's (session, window, distinct, token): fine, or odd ones."""
    if layer != "ids":
        ids = ("session-1", draw(st.sampled_from(["", "window-1"])), "")
        return (*ids, draw(st.sampled_from(TOKENS)))
    session, window, distinct = (draw(st.sampled_from(ODD_IDS)) for _ in range(3))
    return session, window, distinct, draw(st.sampled_from(TOKENS))


# --- encodings ----------------------------------------------------------------------------

CONTENT_TYPES = ("application/json", "text/plain", FORM_TYPE, "", "application/octet-stream")
COMPRESSIONS = ("", "none", "base64", "gzip-js", "gzip", "lz64", "GZIP-JS", "\x00")


@st.composite
def encoded(draw: st.DrawFn, text: bytes, layer: str) -> tuple[bytes, str, str]:
    """(body, content type, compression) as posthog-js sends `text` (gzip, form base64,
    JSON), maybe bent in its bytes, its encoding or what the request says of them."""
    how = draw(st.sampled_from(["json", "gzip", "form", "form-gzip"]))
    if how == "json":
        raw, kind, compression = text, "application/json", draw(st.sampled_from(["", "none"]))
    elif how == "gzip":
        raw = draw(gzip_bent(text)) if layer == "encoding" else gzip.compress(text, mtime=0)
        kind, compression = "text/plain", draw(st.sampled_from(["", "gzip-js"]))
    else:
        packed = gzip.compress(text, mtime=0) if how == "form-gzip" else text
        data = pybase64.b64encode(packed).decode()
        if layer == "encoding":
            data = draw(text_mutated(data))
        quoted = data if draw(st.booleans()) else quote(data, safe="")  # `+` left as is
        raw, kind, compression = f"data={quoted}".encode(), FORM_TYPE, "base64"
        raw = draw(st.sampled_from([raw, raw + b"&ver=1.4", b"ver=1&" + raw]))
    if layer == "bytes":
        raw = draw(bytes_mutated(raw))
    if layer == "request":
        kind = draw(st.sampled_from(CONTENT_TYPES))
        compression = draw(st.sampled_from(COMPRESSIONS))
    return raw, kind, compression


@st.composite
def requests(draw: st.DrawFn) -> Request:
    """A request to `/s/` (or `/e/`) or to the plain intake, bent at one layer."""
    layer = draw(st.sampled_from(LAYERS))
    plain = draw(st.booleans())
    doc = draw(plain_documents(layer) if plain else posthog_documents(layer))
    raw, kind, compression = draw(encoded(JSON.encode(draw(bent_document(doc, layer))), layer))
    ids = draw(plain_ids(layer)) if plain else None
    return Request(raw, kind, compression, ids, draw(st.sampled_from(LIMITS)))


# --- the chain ----------------------------------------------------------------------------


def capture(request: Request) -> list[Record]:
    """What the intake does with a request, minus HTTP and Kafka: the records it would
    produce ([] for a token it would refuse 401, or a team that does not record)."""
    body = decode_body(request.raw, request.content_type, request.compression, MAX_DECODED)
    if request.plain is not None:
        session, window, distinct, token = request.plain
        parsed = Parsed(token, [parse_plain(body, session, window, distinct)], 0)
    else:
        parsed = parse_posthog(body)
    team = REGISTRY.team_for_token(parsed.token) if parsed.token else None
    if team is None or not team.recording_enabled:
        event("no records: 401 or a team that does not record")
        return []
    origin = Origin(team.token, team.team_id, ORIGIN_ISO, ORIGIN_MS)
    records = write(parsed.snapshots, origin, request.max_bytes, MAX_DECODED)
    sent = sum(len(snapshot.items) for snapshot in parsed.snapshots)
    assert events_in(records, request.max_bytes) == sent, "an event lost or repeated"
    return records


def events_in(records: list[Record], max_bytes: int) -> int:
    """How many events the worker reads in the records: every one within the limit,
    each items record parsed, each chunked set parsed and put together into its event."""
    count, pieces = 0, defaultdict[str, list[Chunk]](list)
    for record in records:
        assert record.size <= max_bytes, (record.size, max_bytes)
        if record.format == ITEMS_FORMAT:
            message = msgspec.json.decode(record.value, type=ItemsMessage)
            count += len(msgspec.json.decode(message.data, type=ItemsEvent).properties.items)
            encoding = dict(record.headers).get(CONTENT_ENCODING_HEADER)
            try:
                parse_items(record.value, encoding, REGISTRY, max_bytes, MAX_DECODED)
            except Rejected as rejection:  # the worker's dead letter, with the original
                event(f"the worker dead-letters it: {rejection.reason}")
                assert rejection.reason in REASONS
            continue
        assert record.format == CHUNKED_FORMAT
        assert record.size + RECORD_HEADROOM <= max_bytes, "no room to forward the piece"
        chunk = parse_capture(record.value, REGISTRY, max_bytes)
        pieces[chunk.chunk_id].append(chunk)
    for chunks in pieces.values():
        chunks.sort(key=lambda chunk: chunk.chunk_index)
        assert [c.chunk_index for c in chunks] == list(range(chunks[0].chunk_count))
        text = decode_pieces([c.data for c in chunks], chunks[0].compression, MAX_DECODED)
        assert len(msgspec.json.decode(text, type=list[msgspec.Raw])) == 1, "one event"
        count += 1
    return count


@FUZZ
@given(requests())
def test_capture_answers_every_bent_body_with_records_or_a_refusal(request: Request) -> None:
    """Records the worker takes (see `capture`), or a 400 or 413: never another error."""
    try:
        records = capture(request)
    except Refused as refused:
        event(f"refused {refused.status}: " + re.sub(r"[0-9]+", "N", refused.detail[:24]))
        assert refused.status in (400, 413), refused
        return
    event("records: " + (", ".join(sorted({r.format for r in records})) or "none"))


# --- what the fuzz found once, kept as regressions -------------------------------------------


def _full_snapshot(data: Any, **extra: Any) -> dict[str, Any]:
    return {"type": 2, "timestamp": TS, "data": data, "cv": "2024-10"} | extra


def _gzipped(text: bytes) -> str:
    """A `cv` field holding `text` (whatever it is), as posthog-js writes one."""
    return gzip.compress(text, mtime=0).decode("latin-1")


def _half_budget() -> str:
    return _gzipped(b'"' + b"a" * (MAX_DECODED // 2 + 1) + b'"')


BAD_CV: list[tuple[str, list[dict[str, Any]], int]] = [
    ("not_latin1", [_full_snapshot(cv_string({"node": {}}) + "\u2713")], 400),
    ("not_gzip", [_full_snapshot('{"node":{}}')], 400),
    ("gzip_of_bad_json", [_full_snapshot(_gzipped(b"{x"))], 400),
    ("too_deep", [_full_snapshot(_gzipped(b"[" * 3000 + b"]" * 3000))], 400),
    ("unknown_version", [_full_snapshot(cv_string({"node": {}}), cv="2031-01")], 400),
    ("not_a_string", [_full_snapshot({"node": {}})], 400),
    ("past_the_budget_together", [_full_snapshot(_half_budget())] * 2, 413),
]


@pytest.mark.parametrize(("events", "status"), [b[1:] for b in BAD_CV], ids=[b[0] for b in BAD_CV])
def test_an_items_batch_with_a_bad_cv_field_is_written_for_the_worker_to_dead_letter(
    events: list[dict[str, Any]], status: int
) -> None:
    """Capture writes it as sent (no 4xx: the client would drop it for good); the worker
    refuses it with a reason, and its dead letter keeps the original bytes for a replay.
    Bent within the oversized event's chunked path, the same fields are refused here
    with `status` (tests/unit/test_capture_writer.py)."""
    body = JSON.encode([snapshot_event(events, event_uuid="e-1")])
    snapshots = parse_posthog(body).snapshots
    origin = Origin("token-1", 1, ORIGIN_ISO, ORIGIN_MS)
    [record] = write(snapshots, origin, 1_000_000, MAX_DECODED)
    assert record.format == ITEMS_FORMAT
    with pytest.raises(Rejected) as rejected:
        parse_items(record.value, None, REGISTRY, 1_000_000, MAX_DECODED)
    reason = rejected.value.reason
    assert reason in REASONS and (reason == "oversized") == (status == 413)
