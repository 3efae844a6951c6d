"""A single rrweb event over the message limit, in the chunked `$snapshot` format. Pure.

The `$snapshot_items` format has no pieces: one message is one batch. An event larger
than a message (the full snapshot of a heavy page) is therefore written the older way,
to CAPTURE_TOPIC: base64(gzip(JSON array)) cut into pieces, each record small enough for
the worker to forward to its reassembly (streams.stages.RECORD_HEADROOM), which puts it
together again. No recording is lost to its size.

The chunked format carries plain rrweb events: the worker inflates posthog-js's `cv`
fields only on the items input, so an event that has them is inflated here first.
"""

from __future__ import annotations

import msgspec
import pybase64
from isal import isal_zlib

from capture.records import CHUNKED_FORMAT, Record, derived_uuid
from capture.refusal import TOO_LARGE, Refused, bad
from streams.dlq import Rejected
from streams.items import CV_MARK, plain_event
from streams.models import Envelope, SnapshotData, SnapshotEvent, SnapshotProperties
from streams.parse import MAX_CHUNK_COUNT
from streams.stages import RECORD_HEADROOM
from streams.topics import CAPTURE_TOPIC

COMPRESSION = "gzip-base64"
_DIGITS = len(str(MAX_CHUNK_COUNT))


def chunked_records(
    event: bytes | msgspec.Raw,
    *,
    ids: tuple[str, str, str],
    token: str,
    team_id: int,
    chunk_id: str,
    full_snapshot: bool,
    max_bytes: int,
    max_decoded: int,
) -> list[Record]:
    """The pieces of one event (JSON bytes) as CAPTURE_TOPIC records keyed by session;
    `ids` are (session, window, distinct); every record stays under `max_bytes` less
    the worker's forwarding headroom. `cv` fields inflate to at most `max_decoded`."""
    session, window, distinct = ids
    event = plain(event, max_decoded)
    encoded = pybase64.b64encode(isal_zlib.compress(b"[" + event + b"]", 2, 31)).decode()

    def value(index: int, count: int, piece: str) -> bytes:
        data = SnapshotData(chunk_id, index, count, piece, COMPRESSION, full_snapshot)
        props = SnapshotProperties(data, distinct, session, window or None)
        inner = msgspec.json.encode(SnapshotEvent("$snapshot", props)).decode()
        uuid = derived_uuid(chunk_id, index)
        return msgspec.json.encode(Envelope(token, inner, team_id, distinct, uuid))

    key = session.encode()
    room = max_bytes - RECORD_HEADROOM - len(key) - len(value(0, 0, "")) - 2 * _DIGITS
    if room < 4:
        raise ValueError(f"a message limit of {max_bytes} bytes leaves no room for a piece")
    room -= room % 4  # whole base64 quads per piece: each decodes on its own
    pieces = [encoded[start : start + room] for start in range(0, len(encoded), room)]
    if len(pieces) > MAX_CHUNK_COUNT:  # the worker would refuse the set
        raise Refused(TOO_LARGE, f"one event needs {len(pieces)} pieces > {MAX_CHUNK_COUNT}")
    return [
        Record(CAPTURE_TOPIC, key, value(index, len(pieces), piece), (), CHUNKED_FORMAT)
        for index, piece in enumerate(pieces)
    ]


def plain(event: bytes | msgspec.Raw, max_decoded: int) -> bytes:
    """The event with its `cv` fields (if any) inflated and `cv` removed."""
    event = bytes(event)
    if CV_MARK not in event:
        return event
    try:
        return plain_event(event, [max_decoded])
    except Rejected as exc:
        if exc.reason == "oversized":
            raise Refused(TOO_LARGE, f"an event inflates beyond {max_decoded} bytes") from None
        raise bad(f"an event's cv fields: {exc.error}") from None
