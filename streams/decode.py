"""Decode a reassembled payload and summarise its rrweb events. Pure functions.

The payload is base64(gzip(JSON array)) or the JSON text itself. Decompression is
bounded (a gzip bomb is `oversized`, not an out-of-memory kill) and the events are
decoded into a two-field struct only: msgspec skips each event's `data` without
building Python objects for it.
"""

from __future__ import annotations

import binascii
from typing import cast

import msgspec
import pybase64
from isal import isal_zlib

from streams.dlq import Rejected
from streams.models import EventSummary

_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
_GzipError = cast(type[Exception], isal_zlib.error)
# rrweb timestamps are epoch milliseconds; anything outside 2000..2100 is corrupt.
_MIN_TS, _MAX_TS = 946_684_800_000, 4_102_444_800_000


class _EventHead(msgspec.Struct):
    type: int
    timestamp: int | float


_events_decoder = msgspec.json.Decoder(list[_EventHead])


def gunzip_bounded(compressed: bytes, max_bytes: int) -> bytes:
    """Gunzip at most max_bytes of output; raise Rejected on corrupt or oversized input."""
    inflater = isal_zlib.decompressobj(_GZIP_WBITS)
    try:
        out = inflater.decompress(compressed, max_bytes + 1)
    except _GzipError as exc:
        raise Rejected("invalid_gzip", "decode", str(exc)) from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise Rejected("oversized", "decode", f"payload inflates beyond {max_bytes} bytes")
    if not inflater.eof:
        raise Rejected("invalid_gzip", "decode", "truncated gzip stream")
    return out


def decode_payload(data: str, compression: str, max_bytes: int) -> bytes:
    """The JSON text of a batch of rrweb events, from the joined `data` pieces."""
    if compression == "none":
        payload = data.encode("utf-8", "surrogatepass")
        if len(payload) > max_bytes:
            raise Rejected("oversized", "decode", f"payload of {len(payload)} bytes > {max_bytes}")
        return payload
    try:
        compressed = pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected("invalid_base64", "decode", str(exc)) from None
    return gunzip_bounded(compressed, max_bytes)


def summarize_events(payload: bytes) -> EventSummary:
    """First/last timestamp, count and full-snapshot presence, from the events themselves."""
    try:
        events = _events_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise Rejected("invalid_events", "decode", str(exc)) from None
    if not events:
        raise Rejected("invalid_events", "decode", "empty list of events")
    timestamps = [int(e.timestamp) for e in events]
    first, last = min(timestamps), max(timestamps)
    if first < _MIN_TS or last > _MAX_TS:
        raise Rejected("invalid_events", "decode", f"timestamp out of range: {first}..{last}")
    return EventSummary(
        first_timestamp=first,
        last_timestamp=last,
        event_count=len(events),
        has_full_snapshot=any(e.type == 2 for e in events),
    )
