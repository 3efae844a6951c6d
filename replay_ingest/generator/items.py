"""Synthetic sessions as `$snapshot_items` messages (topic
`session_recording_snapshot_item_events`, PostHog's current capture format), with truth.

The batches are the chunked generator's (`capture.batches`): same sessions, windows and
events; each batch becomes one message keyed by its session id, with PostHog's headers.
Options choose each message's value encoding (plain JSON, gzip, or lz4 with the
`content-encoding: lz4` header), how many eligible events posthog-js-style per-event
compression (`"cv": "2024-10"`) gets, and how many messages leave out `$window_id`.
The truth of a batch is a BatchTruth of the row it must become (the stored events are
the plain ones, so its size and hash are those of the uncompressed events).
"""

from __future__ import annotations

import gzip
import hashlib
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import lz4.block
import msgspec

from replay_ingest.generator.capture import BatchTruth, batches
from replay_ingest.generator.rrweb import Event
from replay_ingest.generator.sessions import GenerateOptions
from streams.items import CV_2024_10 as CV
from streams.items import CV_FIELDS
from streams.models import CONTENT_ENCODING_HEADER, ITEMS_EVENT

ENCODINGS = ("plain", "gzip", "lz4")


@dataclass(frozen=True, slots=True)
class ItemsOptions:
    """How the items messages are written (the events come from GenerateOptions)."""

    encodings: tuple[str, ...] = ("plain",)  # each message's encoding: one of these, at random
    cv_rate: float = 0.0  # share of compressible events (full snapshots, mutations) given cv
    no_window_rate: float = 0.0  # share of messages without `$window_id`
    seed: int = 0


class ItemsRecord(NamedTuple):
    """One Kafka record: key (the session id), value, headers."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def generate_items(
    opts: GenerateOptions, items: ItemsOptions = ItemsOptions()
) -> Iterator[tuple[ItemsRecord, BatchTruth]]:
    """Yield, per batch, its items message and the truth of its row."""
    rng = random.Random(f"items-{opts.seed}-{items.seed}")
    for ids, events, _ in batches(opts):
        yield items_record(opts, items, rng, ids, events)


def items_record(
    opts: GenerateOptions,
    items: ItemsOptions,
    rng: random.Random,
    ids: dict[str, str],
    events: list[Event],
) -> tuple[ItemsRecord, BatchTruth]:
    """One batch as an items message, and the truth of its row."""
    sent = [cv_compressed(e) if rng.random() < items.cv_rate else e for e in events]
    has_window = rng.random() >= items.no_window_rate
    message_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    body = items_value(opts.token, ids, sent, message_id, with_window=has_window)
    encoding = rng.choice(items.encodings)
    value, headers = encode_value(body, encoding)
    headers = [*item_headers(opts.token, ids, message_id, events), *headers]
    record = ItemsRecord(ids["session_id"].encode(), value, headers)
    return record, truth_of(opts, ids, events, message_id, has_window)


def items_value(
    token: str, ids: dict[str, str], events: list[Event], message_id: str, *, with_window: bool
) -> bytes:
    """The message value as PostHog's capture writes it: `data` is a JSON string."""
    props: dict[str, object] = {"$session_id": ids["session_id"]}
    if with_window:
        props["$window_id"] = ids["window_id"]
    props |= {
        "$snapshot_source": "web",
        "$snapshot_items": events,
        "$lib": "web",
        "distinct_id": ids["distinct_id"],
    }
    data = msgspec.json.encode({"event": ITEMS_EVENT, "properties": props}).decode()
    last = max(int(e["timestamp"]) for e in events)  # type: ignore[call-overload]
    now = datetime.fromtimestamp(last / 1000, tz=UTC).isoformat()
    return msgspec.json.encode(
        {
            "uuid": message_id,
            "distinct_id": ids["distinct_id"],
            "ip": "127.0.0.1",
            "data": data,
            "now": now,
            "sent_at": now,
            "token": token,
            "event": ITEMS_EVENT,
            "timestamp": last,
        }
    )


def encode_value(body: bytes, encoding: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """The value in `encoding`, and the header it needs (lz4 only)."""
    if encoding == "gzip":
        return gzip.compress(body, 1, mtime=0), []
    if encoding == "lz4":
        block = lz4.block.compress(body, store_size=False)
        return len(body).to_bytes(4, "little") + block, [(CONTENT_ENCODING_HEADER, b"lz4")]
    if encoding == "plain":
        return body, []
    raise ValueError(f"unknown encoding {encoding!r} (one of {', '.join(ENCODINGS)})")


def item_headers(
    token: str, ids: dict[str, str], message_id: str, events: list[Event]
) -> list[tuple[str, bytes]]:
    last = max(int(e["timestamp"]) for e in events)  # type: ignore[call-overload]
    values = {
        "token": token,
        "distinct_id": ids["distinct_id"],
        "session_id": ids["session_id"],
        "timestamp": str(last),
        "event": ITEMS_EVENT,
        "uuid": message_id,
        "now": datetime.fromtimestamp(last / 1000, tz=UTC).isoformat(),
    }
    return [(name, value.encode()) for name, value in values.items()]


def gzip_to_string(value: object) -> str:
    """posthog-js's gzipToString: the gzip of the JSON, one character per byte."""
    return gzip.compress(msgspec.json.encode(value), mtime=0).decode("latin-1")


def cv_compressed(event: Event) -> Event:
    """The event as posthog-js compresses it (compressEvent); other kinds unchanged.
    `cv` goes last, so that the plain event is the compressed one minus `cv`, in order."""
    data = event.get("data")
    if event.get("type") == 2:
        return {**event, "data": gzip_to_string(data), "cv": CV}
    if event.get("type") == 3 and isinstance(data, dict) and data.get("source") in CV_FIELDS:
        fields = CV_FIELDS[data["source"]]
        packed = {k: gzip_to_string(v) if k in fields else v for k, v in data.items()}
        return {**event, "data": packed, "cv": CV}
    return event


def truth_of(
    opts: GenerateOptions,
    ids: dict[str, str],
    events: list[Event],
    message_id: str,
    has_window: bool,
) -> BatchTruth:
    payload = msgspec.json.encode(events)
    timestamps = [int(e["timestamp"]) for e in events]  # type: ignore[call-overload]
    return BatchTruth(
        team_id=opts.team_id,
        distinct_id=ids["distinct_id"],
        session_id=ids["session_id"],
        window_id=ids["window_id"] if has_window else ids["session_id"],
        chunk_id=message_id,
        chunk_count=1,
        first_timestamp=min(timestamps),
        last_timestamp=max(timestamps),
        event_count=len(events),
        size=len(payload),
        has_full_snapshot=any(e["type"] == 2 for e in events),
        producer_flag=None,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
