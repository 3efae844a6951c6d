"""Synthetic sessions as capture messages (topic `session_recording_events`), with truth.

Counts and sizes are drawn log-normally around the production figures (per session:
full snapshots 2 sd 4, incremental batches 40 sd 214; per batch, compressed: full
snapshot 185 KB sd 160 KB, incremental 14 KB sd 50 KB). Every batch is gzip-base64
encoded and cut into pieces of `chunk_size` characters; a few batches carry a wrong or
missing `has_full_snapshot` flag, as some producers send.
"""

from __future__ import annotations

import hashlib
import random
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime

import msgspec
import pybase64
from isal import isal_zlib

from replay_ingest.generator.rrweb import Event, SessionWriter
from replay_ingest.generator.sessions import GenerateOptions, identities, lognormal

# JSON bytes per compressed byte for the two kinds of content, measured on this
# generator's own output (text-heavy DOM and event JSON compress about 4:1).
FULL_RATIO = 2.6
INCREMENTAL_RATIO = 4.0


class BatchTruth(msgspec.Struct):
    """Ground truth for one generated batch (one chunk_id)."""

    team_id: int
    distinct_id: str
    session_id: str
    window_id: str
    chunk_id: str
    chunk_count: int
    first_timestamp: int
    last_timestamp: int
    event_count: int
    size: int
    has_full_snapshot: bool
    producer_flag: bool | None
    sha256: str


def generate(opts: GenerateOptions) -> Iterator[tuple[list[bytes], BatchTruth]]:
    """Yield, per batch, its capture messages (one per piece) and its ground truth."""
    for ids, events, rng in batches(opts):
        yield _batch_messages(opts, rng, ids, events)


def batches(opts: GenerateOptions) -> Iterator[tuple[dict[str, str], list[Event], random.Random]]:
    """Per batch in recording order: its ids (session, window, distinct), its events, and
    its session's random stream (drawn from before the next batch is made)."""
    for who, rng in identities(opts):
        writer = SessionWriter(rng, who.start_ms)
        plan = _session_plan(opts, rng, who.index < opts.large_full_snapshots)
        for (window, kind), following in zip(plan, [*plan[1:], None], strict=True):
            ids = {
                "session_id": who.session_id,
                "window_id": who.window_ids[window],
                "distinct_id": who.distinct_id,
            }
            events = _batch_events(opts, writer, kind, who.urls[window])
            if following != (window, "incremental"):
                writer.end_burst()  # a burst goes on only into its window's next batch
            writer.between_batches()
            yield ids, events, rng


def _batch_events(opts: GenerateOptions, writer: SessionWriter, kind: str, url: str) -> list[Event]:
    """The events of one batch: incremental ones, or a window's meta and full snapshot."""
    rng = writer.rng
    if kind == "incremental":
        size = lognormal(rng, opts.incremental_size_mean, opts.incremental_size_sd)
        return writer.incremental_batch(int(size * INCREMENTAL_RATIO))
    if kind == "large":
        size = opts.large_full_snapshot_bytes
    else:
        size = lognormal(rng, opts.full_size_mean, opts.full_size_sd)
    return [writer.meta(url), writer.full_snapshot(int(size * FULL_RATIO))]


def _session_plan(opts: GenerateOptions, rng: random.Random, large: bool) -> list[tuple[int, str]]:
    """(window, kind) per batch in time order; each window opens with a full snapshot."""
    windows = rng.randint(1, 3)
    fulls = max(windows, round(lognormal(rng, opts.full_count_mean, opts.full_count_sd)))
    incrementals = round(lognormal(rng, opts.incremental_count_mean, opts.incremental_count_sd))
    rest = ["full"] * (fulls - windows) + ["incremental"] * incrementals
    rng.shuffle(rest)
    plan = [(w, "large" if large and w == 0 else "full") for w in range(windows)]
    plan += [(rng.randrange(windows), kind) for kind in rest]
    return plan


def _batch_messages(
    opts: GenerateOptions, rng: random.Random, ids: dict[str, str], events: list[Event]
) -> tuple[list[bytes], BatchTruth]:
    payload = msgspec.json.encode(events)
    encoded = pybase64.b64encode(isal_zlib.compress(payload, 2, 31)).decode()
    pieces = [encoded[i : i + opts.chunk_size] for i in range(0, len(encoded), opts.chunk_size)]
    chunk_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    timestamps = [int(e["timestamp"]) for e in events]  # type: ignore[call-overload]
    has_full = any(e["type"] == 2 for e in events)
    flag: bool | None = has_full
    if rng.random() < opts.wrong_flag_rate:
        flag = rng.choice((not has_full, None))
    truth = BatchTruth(
        team_id=opts.team_id,
        distinct_id=ids["distinct_id"],
        session_id=ids["session_id"],
        window_id=ids["window_id"],
        chunk_id=chunk_id,
        chunk_count=len(pieces),
        first_timestamp=min(timestamps),
        last_timestamp=max(timestamps),
        event_count=len(events),
        size=len(payload),
        has_full_snapshot=has_full,
        producer_flag=flag,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    messages = []
    for index, piece in enumerate(pieces):
        snapshot = {
            "chunk_id": chunk_id,
            "chunk_index": index,
            "chunk_count": len(pieces),
            "data": piece,
            "compression": "gzip-base64",
        }
        if flag is not None:
            snapshot["has_full_snapshot"] = flag
        messages.append(_message(opts, rng, ids, snapshot, max(timestamps)))
    return messages, truth


def _message(
    opts: GenerateOptions,
    rng: random.Random,
    ids: dict[str, str],
    snapshot: dict[str, object],
    sent_ms: int,
) -> bytes:
    """One piece in its capture envelope; the session/window keys in one of the three
    forms producers send ($-prefixed, plain, both)."""
    style = rng.random()
    props: dict[str, object] = {"distinct_id": ids["distinct_id"], "snapshot_data": snapshot}
    if style < 0.8:
        props |= {"$session_id": ids["session_id"], "$window_id": ids["window_id"]}
    elif style < 0.9:
        props |= {"session_id": ids["session_id"], "window_id": ids["window_id"]}
    else:
        props |= {
            "$session_id": ids["session_id"],
            "$window_id": ids["window_id"],
            "session_id": ids["session_id"],
            "window_id": ids["window_id"],
        }
    inner = msgspec.json.encode({"event": "$snapshot", "properties": props}).decode()
    sent = datetime.fromtimestamp(sent_ms / 1000, tz=UTC).isoformat()
    return msgspec.json.encode(
        {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "distinct_id": ids["distinct_id"],
            "ip": "127.0.0.1",
            "site_url": "https://example.com",
            "team_id": opts.team_id,
            "now": sent,
            "sent_at": sent,
            "token": opts.token,
            "data": inner,
        }
    )
