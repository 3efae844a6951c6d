"""Parse, attribute and decode one `$snapshot_items` message (topic
`session_recording_snapshot_item_events`, PostHog's current capture format): bytes and
its content-encoding header in, the batch's identity and the JSON text of its plain
rrweb events out. Pure: no Kafka, no I/O.

One message is one whole batch (no reassembly). Its value is plain JSON, gzip (starts
`1f 8b`) or lz4 (header `content-encoding: lz4`: a 4-byte little-endian length, then
one lz4 block); every inflation is bounded by `max_decoded_bytes`, so a bomb is a dead
letter, not an out-of-memory kill. Events that posthog-js compressed one by one (`"cv":
"2024-10"`) get their listed fields inflated and put back, `cv` dropped; every other
event is kept byte for byte, never decoded into a dict (DESIGN: that is most of the CPU).
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple

import lz4.block
import msgspec

from config.teams import TeamRegistry
from streams.batches import BatchIds
from streams.decode import GZIP_MAGIC, gunzip
from streams.dlq import Rejected
from streams.models import ITEMS_EVENT, ItemsEvent, ItemsMessage
from streams.parse import authorize, check_size, decode_strict, distinct_id_of, valid_id

LZ4 = b"lz4"
_LENGTH_BYTES = 4
CV_2024_10 = "2024-10"
CV_MARK = b'"cv"'
# The fields posthog-js compresses per event kind, by (type, incremental source):
# a full snapshot's whole `data`, a mutation's and a stylesheet rule's lists.
_FULL_SNAPSHOT = 2
_INCREMENTAL = 3
CV_FIELDS = {0: ("texts", "attributes", "removes", "adds"), 8: ("adds", "removes")}

_message_decoder = msgspec.json.Decoder(ItemsMessage)
_event_decoder = msgspec.json.Decoder(ItemsEvent)
_any_decoder = msgspec.json.Decoder()
_raw_decoder = msgspec.json.Decoder(msgspec.Raw)  # checks the JSON, builds no objects
_encoder = msgspec.json.Encoder()


class ItemsBatch(NamedTuple):
    """One decoded items message: who it belongs to, and its events' JSON text."""

    ids: BatchIds
    payload: bytes


def parse_items(
    raw: bytes | None,
    content_encoding: bytes | None,
    registry: TeamRegistry,
    max_message_bytes: int,
    max_decoded_bytes: int,
) -> ItemsBatch:
    """Validate an items message, attribute it to the team of its token (it claims no
    team_id) and decode its events; Rejected says why a message cannot be."""
    check_size(raw, max_message_bytes)
    if raw is None:
        raise Rejected("invalid_json", "parse", "no value (a tombstone)")
    value = unwrap(raw, content_encoding, max_decoded_bytes)
    message = decode_strict(_message_decoder, value, "parse")
    assert isinstance(message, ItemsMessage)
    team = authorize(registry, message.token, None)
    event = decode_strict(_event_decoder, message.data, "parse")
    assert isinstance(event, ItemsEvent)
    if event.event != ITEMS_EVENT:
        error = f"event {event.event[:80]!r} != {ITEMS_EVENT!r}"
        raise Rejected("invalid_event", "validate", error)
    props = event.properties
    session_id = valid_id(props.session_id, "$session_id", required=True)
    window_id = valid_id(props.window_id, "$window_id", required=False) or session_id
    ids = BatchIds(
        team_id=team.team_id,
        distinct_id=distinct_id_of(props.distinct_id, message.distinct_id),
        session_id=session_id,
        window_id=window_id,
        chunk_id=batch_id(message),
    )
    if not props.items:
        raise Rejected("invalid_events", "validate", "$snapshot_items is empty")
    return ItemsBatch(ids, events_payload(props.items, max_decoded_bytes))


def batch_id(message: ItemsMessage) -> str:
    """The row identity: the message's `uuid`. Without one, a hash of the message's
    `data` string stands in: deterministic, so a replayed or duplicated message (in any
    value encoding) still leaves one row; two different batches never share it."""
    if message.uuid:
        return valid_id(message.uuid, "uuid", required=True)
    digest = hashlib.sha256(message.data.encode("utf-8", "surrogatepass")).hexdigest()
    return f"sha256-{digest[:32]}"


def unwrap(raw: bytes, content_encoding: bytes | None, max_bytes: int) -> bytes:
    """The message's JSON bytes: lz4 (by its header), gzip (by its magic) or as is."""
    if content_encoding is not None and content_encoding.strip().lower() == LZ4:
        return unlz4(raw, max_bytes)
    if raw.startswith(GZIP_MAGIC):
        return gunzip(raw, max_bytes)
    return raw


def unlz4(raw: bytes, max_bytes: int) -> bytes:
    """PostHog's lz4 wrapping: the declared length is refused before anything is
    inflated if it passes `max_bytes`, and the block must inflate to exactly it."""
    if len(raw) < _LENGTH_BYTES:
        raise Rejected("invalid_lz4", "decode", "shorter than the lz4 length prefix")
    size = int.from_bytes(raw[:_LENGTH_BYTES], "little")
    if size > max_bytes:
        raise Rejected("oversized", "decode", f"lz4 declares {size} bytes > {max_bytes}")
    try:
        out = lz4.block.decompress(raw[_LENGTH_BYTES:], uncompressed_size=size)
    except lz4.block.LZ4BlockError as exc:
        raise Rejected("invalid_lz4", "decode", str(exc) or "not an lz4 block") from None
    if len(out) != size:
        raise Rejected("invalid_lz4", "decode", f"lz4 block of {len(out)} bytes, not {size}")
    return bytes(out)


def events_payload(items: list[msgspec.Raw], max_bytes: int) -> bytes:
    """The JSON array of the batch's plain events. Only an event whose bytes mention
    `"cv"` is decoded (and re-encoded if it is compressed); inflated fields of the whole
    message share one budget of `max_bytes`, as does the array itself."""
    budget = [max_bytes]
    parts = []
    for item in items:
        raw = bytes(item)
        parts.append(plain_event(raw, budget) if CV_MARK in raw else raw)
    payload = b"[" + b",".join(parts) + b"]"
    if len(payload) > max_bytes:
        raise Rejected("oversized", "decode", f"events pass {max_bytes} bytes")
    return payload


def plain_event(raw: bytes, budget: list[int]) -> bytes:
    """An event that may carry `cv`: its listed fields inflated, `cv` removed."""
    try:
        event = _any_decoder.decode(raw)
    except RecursionError:
        raise Rejected("too_deep", "decode", "rrweb event nested too deeply") from None
    except msgspec.DecodeError as exc:  # (cannot happen: the items were parsed as JSON)
        raise Rejected("invalid_events", "decode", str(exc)) from None
    if not isinstance(event, dict) or "cv" not in event:
        return raw  # "cv" was only in a value: the event is stored as it came
    version = event.pop("cv")
    if version != CV_2024_10:
        raise Rejected("invalid_events", "decode", f"unknown cv {str(version)[:40]!r}")
    kind, data = event.get("type"), event.get("data")
    if kind == _FULL_SNAPSHOT:
        event["data"] = inflate_field(data, "data", budget)
    elif kind == _INCREMENTAL and isinstance(data, dict):
        source = data.get("source")
        for name in CV_FIELDS.get(source, ()) if type(source) is int else ():
            if data.get(name) is not None:
                data[name] = inflate_field(data[name], name, budget)
    return _encoder.encode(event)


def inflate_field(value: Any, name: str, budget: list[int]) -> msgspec.Raw:
    """One compressed field: its characters are the bytes (latin-1) of gzipped JSON.
    The JSON is checked and put back as it is (raw), never built into Python objects:
    a full snapshot's DOM as dicts would cost more than all the rest."""
    if not isinstance(value, str):
        raise Rejected("invalid_events", "decode", f"cv field {name} is not a string")
    try:
        packed = value.encode("latin-1")
    except UnicodeEncodeError:
        raise Rejected("invalid_events", "decode", f"cv field {name} is not latin-1") from None
    text = gunzip(packed, budget[0])
    budget[0] -= len(text)
    try:
        return _raw_decoder.decode(text)
    except RecursionError:
        raise Rejected("too_deep", "decode", f"cv field {name} nested too deeply") from None
    except msgspec.DecodeError as exc:
        raise Rejected("invalid_events", "decode", f"cv field {name}: {exc}") from None
