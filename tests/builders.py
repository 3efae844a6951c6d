"""Message builders with overrides: one valid capture message, bent into any bad shape."""

from __future__ import annotations

import gzip
import uuid
from typing import Any

import msgspec
import pybase64

from streams.models import BatchStats, encode_stats
from streams.stats import summarize_events

TS = 1_793_000_000_000  # 2026-10-26, well inside the valid timestamp range


def events(count: int = 3, full: bool = True, start: int = TS) -> list[dict[str, Any]]:
    """A small rrweb batch: meta, optionally a full snapshot, then mouse moves."""
    batch: list[dict[str, Any]] = [
        {"type": 4, "timestamp": start, "data": {"href": "https://example.com/"}}
    ]
    if full:
        batch.append({"type": 2, "timestamp": start + 1, "data": {"node": {"id": 1}}})
    while len(batch) < count:
        batch.append(
            {"type": 3, "timestamp": start + len(batch) * 10, "data": {"source": 1, "x": 1}}
        )
    return batch


def encode_events(batch: list[dict[str, Any]]) -> str:
    return pybase64.b64encode(gzip.compress(msgspec.json.encode(batch))).decode()


def snapshot_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "chunk_id": str(uuid.uuid4()),
        "chunk_index": 0,
        "chunk_count": 1,
        "data": encode_events(events()),
        "compression": "gzip-base64",
        "has_full_snapshot": True,
    }
    return data | overrides


def envelope(
    *,
    token: str = "token-1",
    team_id: int | None = 1,
    session_id: str = "session-1",
    window_id: str = "window-1",
    distinct_id: str = "user-1",
    event: str = "$snapshot",
    properties: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **envelope_overrides: Any,
) -> dict[str, Any]:
    """A capture message as a dict, its `data` not yet a JSON string (DESIGN input
    shape); `drop` removes envelope keys, `properties` overrides or adds properties."""
    props: dict[str, Any] = {
        "distinct_id": distinct_id,
        "$session_id": session_id,
        "$window_id": window_id,
        "snapshot_data": snapshot if snapshot is not None else snapshot_data(),
    }
    props |= properties or {}
    body: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "distinct_id": distinct_id,
        "ip": "127.0.0.1",
        "site_url": "https://example.com",
        "team_id": team_id,
        "now": "2026-10-26T00:00:00+00:00",
        "sent_at": "2026-10-26T00:00:00+00:00",
        "token": token,
        "data": {"event": event, "properties": props},
    }
    if team_id is None:
        del body["team_id"]
    body |= envelope_overrides
    for key in drop:
        body.pop(key, None)
    return body


def capture(**kwargs: Any) -> bytes:
    """A capture message (see `envelope`), with its `data` encoded as the JSON string."""
    body = envelope(**kwargs)
    if isinstance(body.get("data"), dict):
        body["data"] = msgspec.json.encode(body["data"]).decode()
    return msgspec.json.encode(body)


def pieces_of(batch: list[dict[str, Any]], parts: int, **capture_kwargs: Any) -> list[bytes]:
    """One batch cut into `parts` capture messages sharing a chunk_id."""
    text = encode_events(batch)
    size = -(-len(text) // parts)
    chunk_id = str(uuid.uuid4())
    return [
        capture(
            snapshot=snapshot_data(
                chunk_id=chunk_id,
                chunk_index=i,
                chunk_count=parts,
                data=text[i * size : (i + 1) * size],
            ),
            **capture_kwargs,
        )
        for i in range(parts)
    ]


def performance_entries() -> list[dict[str, Any]]:
    """A resource entry with its timings, a paint and a long task (whose extra fields are
    not columns), as the browser serialises them."""
    return [
        {
            "name": "https://example.com/api/x",
            "entryType": "resource",
            "startTime": 100.25,
            "duration": 50.5,
            "initiatorType": "fetch",
            "responseEnd": 150.75,
            "transferSize": 1300,
            "encodedBodySize": 1000,
            "decodedBodySize": 4000,
            "responseStatus": 404,
            "nextHopProtocol": "h2",
            "serverTiming": [],
        },
        {"name": "first-paint", "entryType": "paint", "startTime": 30.0, "duration": 0},
        {
            "name": "x",
            "entryType": "longtask",
            "startTime": 7,
            "duration": 60,
            "attribution": [{"name": "unknown"}],
        },
    ]


def performance_body(
    *, entries: list[Any] | None = None, drop: tuple[str, ...] = (), **overrides: Any
) -> dict[str, Any]:
    """A `performance_events_batches` message as a dict (DESIGN input shape), dated TS."""
    report: dict[str, Any] = {
        "team_id": 1,
        "token": "token-1",
        "distinct_id": "user-1",
        "session_id": "session-1",
        "window_id": "window-1",
        "pageview_id": "pageview-1",
        "current_url": "https://example.com/",
        "time_origin": TS + 0.5,
        "entries": performance_entries() if entries is None else entries,
    }
    report |= overrides
    for key in drop:
        report.pop(key, None)
    return report


def performance_message(**overrides: Any) -> bytes:
    return msgspec.json.encode(performance_body(**overrides))


def performance_report(time_origin: float, **overrides: Any) -> bytes:
    """A performance report message whose page started at `time_origin` (epoch ms)."""
    return performance_message(time_origin=time_origin, **overrides)


def batch_stats(
    events: list[dict[str, Any]] | None = None,
    window_id: str = "window-1",
    figures_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> BatchStats:
    """One batch's statistics as decode_batch makes them from `events` (default: a meta,
    a full snapshot and a mouse move); overrides are BatchStats fields, and
    SessionFigures fields under `figures_overrides`."""
    if events is None:
        events = [
            {"type": 4, "timestamp": TS, "data": {"href": "https://example.com/"}},
            {"type": 2, "timestamp": TS + 10, "data": {"node": {}}},
            {"type": 3, "timestamp": TS + 20, "data": {"source": 1, "positions": []}},
        ]
    figures = msgspec.structs.replace(
        summarize_events(msgspec.json.encode(events), window_id),
        distinct_id="user-1",
        size=100,
        message_count=1,
        retention_days=7,
    )
    figures = msgspec.structs.replace(figures, **(figures_overrides or {}))
    stats = BatchStats(
        team_id=1, session_id="session-1", chunk_id=str(uuid.uuid4()), figures=figures
    )
    return msgspec.structs.replace(stats, **overrides)


def stats_record(batches: list[BatchStats]) -> bytes:
    """One record of the statistics topic, as the loop sends it (streams.models)."""
    (record,) = encode_stats(batches, 1 << 30)
    return record
