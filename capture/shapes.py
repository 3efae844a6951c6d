"""What a request body says: the recordings it carries, normalised. Pure functions.

posthog-js posts `$snapshot` events to `/s/` as a JSON array (or one object when its
request batching is off) and everything else to `/e/` or `/i/v0/e/`, also in the batch
shape `{"api_key", "batch": [...]}`; the plain intake posts a JSON array of rrweb events.
Only `$snapshot` properties are decoded in full: other events are counted and answered,
never stored. Each rrweb event stays raw JSON (msgspec.Raw) and is written as received,
posthog-js's per-event `cv` compression included (the worker undoes it).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import msgspec

from capture.refusal import bad
from streams.dlq import Rejected
from streams.parse import distinct_id_of, valid_id

SNAPSHOT_EVENT = "$snapshot"


class _Event(msgspec.Struct):
    event: str = ""
    properties: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: none
    uuid: str | None = None
    timestamp: str | None = None
    distinct_id: str | int | None = None


class _Body(msgspec.Struct):
    """One event, or the batch shape; both may carry the token as `api_key`."""

    api_key: str | None = None
    batch: list[_Event] | None = None
    event: str | None = None
    properties: msgspec.Raw = msgspec.field(default_factory=msgspec.Raw)  # empty: none
    uuid: str | None = None
    timestamp: str | None = None
    distinct_id: str | int | None = None


class _TokenOnly(msgspec.Struct):
    token: str | None = None


class _SnapshotProperties(msgspec.Struct):
    snapshot_data: msgspec.Raw = msgspec.field(name="$snapshot_data")
    session_id: str | None = msgspec.field(name="$session_id", default=None)
    window_id: str | None = msgspec.field(name="$window_id", default=None)
    token: str | None = None
    distinct_id: str | int | None = None
    lib: str | None = msgspec.field(name="$lib", default=None)


class RrwebHead(msgspec.Struct):
    """What capture checks of each rrweb event: that it is one (the rest is the worker's)."""

    type: int
    timestamp: int | float


_body_decoder = msgspec.json.Decoder(list[_Event] | _Body)
_token_decoder = msgspec.json.Decoder(_TokenOnly)
_snapshot_decoder = msgspec.json.Decoder(_SnapshotProperties)
_items_decoder = msgspec.json.Decoder(list[msgspec.Raw])
_heads_decoder = msgspec.json.Decoder(list[RrwebHead])


@dataclass(frozen=True, slots=True)
class Snapshot:
    """One batch of rrweb events of one session window, as a client sent it. `uuid` is
    the posthog event's (None from the plain intake); `heads` run parallel to `items`."""

    session_id: str
    window_id: str
    distinct_id: str
    lib: str
    uuid: str | None
    timestamp_ms: int | None
    items: list[msgspec.Raw]
    heads: list[RrwebHead]


@dataclass(frozen=True, slots=True)
class Parsed:
    """A request's recordings, the one token they came with, and how many other events
    it carried (answered and counted, not stored)."""

    token: str | None
    snapshots: list[Snapshot]
    ignored: int


def decode(decoder: msgspec.json.Decoder, data: bytes, what: str) -> object:
    """`data` decoded, or Refused 400 saying what was wrong (nesting too deep included)."""
    try:
        return decoder.decode(data)
    except (msgspec.DecodeError, msgspec.ValidationError) as exc:
        raise bad(f"{what}: {exc}") from None
    except RecursionError:
        raise bad(f"{what}: JSON nested too deeply") from None


def parse_posthog(body: bytes) -> Parsed:
    """The `$snapshot` events of a posthog-js body, all of one token (or 400)."""
    shape = decode(_body_decoder, body, "body")
    if isinstance(shape, list):
        events, api_key = shape, None
    else:
        assert isinstance(shape, _Body)
        events = shape.batch if shape.batch is not None else [_single(shape)]
        api_key = shape.api_key
    tokens = {api_key} if api_key else set()
    snapshots, ignored = [], 0
    for event in events:
        if event.event == SNAPSHOT_EVENT:
            snapshot, token = _snapshot(event)
            snapshots.append(snapshot)
        else:
            ignored += 1
            token = _token_of(event)
        if token:
            tokens.add(token)
    if len(tokens) > 1:
        raise bad("events of several tokens in one request")
    return Parsed(next(iter(tokens), None), snapshots, ignored)


def _single(body: _Body) -> _Event:
    if not body.event:
        raise bad("body: neither an event nor a batch")
    return _Event(body.event, body.properties, body.uuid, body.timestamp, body.distinct_id)


def _token_of(event: _Event) -> str | None:
    if not event.properties:
        return None
    props = decode(_token_decoder, event.properties, f"{event.event[:40]} properties")
    assert isinstance(props, _TokenOnly)
    return props.token


def _snapshot(event: _Event) -> tuple[Snapshot, str | None]:
    if not event.properties:
        raise bad("$snapshot without properties")
    props = decode(_snapshot_decoder, event.properties, "$snapshot properties")
    assert isinstance(props, _SnapshotProperties)
    items, heads = rrweb_events(props.snapshot_data, "$snapshot_data")
    try:
        snapshot = Snapshot(
            session_id=valid_id(props.session_id, "$session_id", required=True),
            window_id=valid_id(props.window_id, "$window_id", required=False),
            distinct_id=distinct_id_of(props.distinct_id, event.distinct_id),
            lib=(props.lib or "web")[:100],
            uuid=event.uuid,
            timestamp_ms=timestamp_ms(event.timestamp),
            items=items,
            heads=heads,
        )
    except Rejected as exc:
        raise bad(exc.error) from None
    return snapshot, props.token


def rrweb_events(data: bytes, what: str) -> tuple[list[msgspec.Raw], list[RrwebHead]]:
    """A JSON array of rrweb events: each raw, and what makes it an rrweb event."""
    items = decode(_items_decoder, data, what)
    heads = decode(_heads_decoder, data, what)
    assert isinstance(items, list) and isinstance(heads, list)
    return items, heads


def parse_plain(body: bytes, session_id: str, window_id: str, distinct_id: str) -> Snapshot:
    """The body of the plain intake (a JSON array of rrweb events), for its ids."""
    items, heads = rrweb_events(body, "body")
    try:
        session = valid_id(session_id, "session_id", required=True)
        window = valid_id(window_id, "window_id", required=False)
        person = distinct_id_of(distinct_id, session)
    except Rejected as exc:
        raise bad(exc.error) from None
    return Snapshot(session, window, person, "rrweb", None, None, items, heads)


def timestamp_ms(text: str | None) -> int | None:
    """Epoch milliseconds of an ISO 8601 time (posthog-js's `timestamp`), else None."""
    if not text:
        return None
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except (ValueError, OverflowError):
        return None
