"""A request's recordings as Kafka records: `$snapshot_items` messages, cut at event
boundaries under the message limit, and the chunked format for a single event over it.
Pure: the handlers produce what this returns.

A request's batches are grouped by (session, window, person, library), in the order
they came; a group becomes as few items messages as the limit allows, each keyed by its
session id with the headers PostHog's capture puts on them (ITEMS_HEADERS). A message's
size is known before it is encoded: its `data` is a JSON string holding the events, and
JSON escapes character by character, so each event's escaped length adds up exactly.
Events posthog-js compressed (`cv`) are written as received: the worker inflates them,
and dead-letters a batch whose fields it cannot inflate with the original bytes, so
such a batch can be replayed once the worker knows better (a new `cv` version), where a
4xx from here would lose it for good.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import msgspec

from capture.chunked import chunked_records
from capture.records import ITEMS_FORMAT, Record, content_id, derived_uuid, headers_size
from capture.refusal import bad
from capture.shapes import Snapshot
from streams.models import ITEMS_EVENT, ITEMS_HEADERS, ItemsEvent, ItemsMessage, ItemsProperties
from streams.topics import ITEMS_TOPIC

SNAPSHOT_SOURCE = "web"
FULL_SNAPSHOT = 2  # rrweb event type
_STAND_IN = msgspec.Raw(b"0")


@dataclass(frozen=True, slots=True)
class Origin:
    """Who sent the request and when: the token decides the team (DESIGN)."""

    token: str
    team_id: int
    now_iso: str
    now_ms: int


@dataclass(slots=True)
class _Group:
    """The batches of one session window of one request, in order."""

    first: Snapshot
    identities: list[str]
    items: list[msgspec.Raw]
    full: list[bool]


def write(
    snapshots: Sequence[Snapshot], origin: Origin, max_bytes: int, max_decoded: int
) -> list[Record]:
    """Every record of a request's batches; none passes `max_bytes`. An event written
    in the chunked format has its `cv` fields inflated, to at most `max_decoded`."""
    records: list[Record] = []
    for group in _groups(snapshots, origin.token):
        records.extend(_group_records(group, origin, max_bytes, max_decoded))
    return records


def _groups(snapshots: Sequence[Snapshot], token: str) -> Iterator[_Group]:
    groups: dict[tuple[str, str, str, str], _Group] = {}
    for snap in snapshots:
        if not snap.items:
            continue
        key = (snap.session_id, snap.window_id, snap.distinct_id, snap.lib)
        group = groups.setdefault(key, _Group(snap, [token, *key], [], []))
        group.identities.append(snap.uuid or content_id(*map(bytes, snap.items)))
        group.items.extend(snap.items)
        group.full.extend(head.type == FULL_SNAPSHOT for head in snap.heads)
    return iter(groups.values())


def _group_records(
    group: _Group, origin: Origin, max_bytes: int, max_decoded: int
) -> Iterator[Record]:
    basis = content_id(*group.identities)
    first = group.first
    timestamp = first.timestamp_ms or origin.now_ms
    uuid_of_part0 = derived_uuid(basis, 0)
    headers = _headers(first, origin, uuid_of_part0, timestamp)
    room = max_bytes - len(first.session_id.encode()) - headers_size(headers)
    sizes = [_escaped_size(item) for item in group.items]
    # one stand-in event `0` (1 byte): omit_defaults leaves an empty list out altogether
    base = len(_value(group, [_STAND_IN], origin, uuid_of_part0, timestamp)) - 1
    for part, (start, end) in enumerate(_cuts(sizes, room - base)):
        uuid = derived_uuid(basis, part)
        if end is None:  # one event over the limit
            ids = (first.session_id, first.window_id, first.distinct_id)
            yield from chunked_records(
                group.items[start],
                ids=ids,
                token=origin.token,
                team_id=origin.team_id,
                chunk_id=uuid,
                full_snapshot=group.full[start],
                max_bytes=max_bytes,
                max_decoded=max_decoded,
            )
            continue
        value = _value(group, group.items[start:end], origin, uuid, timestamp)
        part_headers = _headers(first, origin, uuid, timestamp)
        record = Record(ITEMS_TOPIC, first.session_id.encode(), value, part_headers, ITEMS_FORMAT)
        assert record.size <= max_bytes, (record.size, max_bytes)
        yield record


def _cuts(sizes: list[int], budget: int) -> Iterator[tuple[int, int | None]]:
    """(start, end) of each message's events, in order; (index, None) for an event that
    fits no message. An event after the first of a message adds its comma."""
    start, used = 0, 0
    for index, size in enumerate(sizes):
        if size > budget:
            if index > start:
                yield start, index
            yield index, None
            start, used = index + 1, 0
        elif index > start and used + 1 + size > budget:
            yield start, index
            start, used = index, size
        else:
            used += size + (index > start)
    if start < len(sizes):
        yield start, len(sizes)


def _escaped_size(item: msgspec.Raw) -> int:
    """Bytes the event takes inside the JSON string `data`, quotes and backslashes
    escaped."""
    try:
        text = bytes(item).decode("utf-8")
    except UnicodeDecodeError:
        raise bad("an event is not valid UTF-8") from None
    return len(msgspec.json.encode(text)) - 2


def _value(
    group: _Group, items: list[msgspec.Raw], origin: Origin, uuid: str, timestamp: int
) -> bytes:
    first = group.first
    props = ItemsProperties(
        session_id=first.session_id,
        window_id=first.window_id or None,
        snapshot_source=SNAPSHOT_SOURCE,
        items=items,
        lib=first.lib,
        distinct_id=first.distinct_id,
    )
    data = msgspec.json.encode(ItemsEvent(ITEMS_EVENT, props)).decode()
    message = ItemsMessage(
        token=origin.token,
        data=data,
        uuid=uuid,
        distinct_id=first.distinct_id,
        now=origin.now_iso,
        event=ITEMS_EVENT,
        timestamp=timestamp,
    )
    return msgspec.json.encode(message)


def _headers(
    first: Snapshot, origin: Origin, uuid: str, timestamp: int
) -> tuple[tuple[str, bytes], ...]:
    """ITEMS_HEADERS, as PostHog's capture sets them (the value stays authoritative)."""
    values = {
        "token": origin.token,
        "distinct_id": first.distinct_id,
        "session_id": first.session_id,
        "timestamp": str(timestamp),
        "event": ITEMS_EVENT,
        "uuid": uuid,
        "now": origin.now_iso,
    }
    return tuple((name, values[name].encode()) for name in ITEMS_HEADERS)
