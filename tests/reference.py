"""An independent, deliberately plain computation of a session summary from raw events.

The pipeline computes statistics per batch, merges them per window part, writes parts
to ClickHouse and merges them again in SQL; this computes the same figures in one pass
over all of a session's events, so a test can compare the two. The events themselves
are decoded from the capture messages the plain way too (`events_of`).
"""

from __future__ import annotations

import base64
import gzip
import json
import math
from collections.abc import Iterable
from typing import Any

GAP_MS = 5000
RAGE_GAP_MS, RAGE_RADIUS_PX, RAGE_MIN_CLICKS = 1000, 30, 3  # the definition, restated


def events_of(messages: list[bytes]) -> list[dict[str, Any]]:
    """The events of one batch's capture messages, decoded the plain way (stdlib, pieces
    joined by chunk_index), independently of the pipeline."""
    pieces = []
    for raw in messages:
        snap = json.loads(json.loads(raw)["data"])["properties"]["snapshot_data"]
        pieces.append((snap["chunk_index"], snap["data"]))
    text = "".join(data for _, data in sorted(pieces))
    events: list[dict[str, Any]] = json.loads(gzip.decompress(base64.b64decode(text)))
    return events


def _href(event: dict[str, Any]) -> str | None:
    data = event.get("data") or {}
    href = data.get("href")
    if not isinstance(href, str):
        payload = data.get("payload")
        href = payload.get("href") if isinstance(payload, dict) else None
    return href if isinstance(href, str) and href else None


def active_ms(timestamps: list[int]) -> int:
    total, start, end = 0, None, None
    for ts in sorted(timestamps):
        if start is not None and ts - end > GAP_MS:
            total += max(end - start, 1)
            start = None
        if start is None:
            start = end = ts
        end = ts
    if start is not None:
        total += max(end - start, 1)
    return total


def rage_clicks(batches: list[dict[str, Any]]) -> int:
    """Rage clicks from raw events, batches given in recording order: per browser window,
    clicks sorted by time (ties keep recording order), runs of linked clicks counted."""
    clicks: dict[str, list[tuple[int, int, int, float, float]]] = {}
    for b, batch in enumerate(batches):
        for e, event in enumerate(batch["events"]):
            data = event.get("data") or {}
            x, y = data.get("x"), data.get("y")
            if (event["type"], data.get("source"), data.get("type")) != (3, 2, 2):
                continue
            if not all(isinstance(v, int | float) and abs(v) <= 1e9 for v in (x, y)):
                continue
            window = batch["truth"]["window_id"]
            clicks.setdefault(window, []).append((event["timestamp"], b, e, x, y))
    total = 0
    for window_clicks in clicks.values():
        run, previous = 0, None
        for ts, _, _, x, y in sorted(window_clicks):
            near = previous is not None and 0 <= ts - previous[0] <= RAGE_GAP_MS
            near = near and math.hypot(x - previous[1], y - previous[2]) <= RAGE_RADIUS_PX
            if not near:
                total += run >= RAGE_MIN_CLICKS
                run = 0
            run, previous = run + 1, (ts, x, y)
        total += run >= RAGE_MIN_CLICKS
    return total


def session_summary(batches: list[dict[str, Any]]) -> dict[str, Any]:
    """batches: [{"truth": BatchTruth-like dict, "events": [...]}] of one session, unique."""
    events = [e for b in batches for e in b["events"]]
    incremental = [e for e in events if e["type"] == 3]
    sources = [(e["data"].get("source"), e["data"].get("type")) for e in incremental]
    console = [
        e["data"]["payload"].get("level")
        for e in events
        if e["type"] == 6 and e["data"].get("plugin") == "rrweb/console@1"
    ]
    urls = [(e["timestamp"], _href(e)) for e in events if e["type"] == 4 and _href(e)]
    truths = [b["truth"] for b in batches]
    return {
        "distinct_id": min((t["first_timestamp"], t["distinct_id"]) for t in truths)[1],
        "start_time": min(e["timestamp"] for e in events),
        "end_time": max(e["timestamp"] for e in events),
        "first_url": min(urls)[1] if urls else "",
        "all_urls": sorted({u for _, u in urls}),
        "click_count": sum(1 for s, t in sources if s == 2 and t in (2, 3, 4, 9)),
        "keypress_count": sum(1 for s, _ in sources if s == 5),
        "mouse_activity_count": sum(1 for s, _ in sources if s in (1, 2, 6)),
        **console_counts(level for level in console if isinstance(level, str)),
        "active_milliseconds": active_ms(
            [
                e["timestamp"]
                for e in incremental
                if e["data"].get("source") in (1, 2, 3, 4, 5, 6, 7, 12)
            ]
        ),
        "size": sum(t["size"] for t in truths),
        "event_count": len(events),
        "message_count": sum(t["chunk_count"] for t in truths),
        "has_full_snapshot": any(e["type"] == 2 for e in events),
        "window_count": len({t["window_id"] for t in truths if t["window_id"]}),
        "rage_click_count": rage_clicks(batches),
    }


def items_events_of(value: bytes, headers: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    """The plain events of one `$snapshot_items` message, decoded the plain way (stdlib
    gzip and json, lz4's block format, posthog-js's `cv` fields undone), independently
    of the pipeline."""
    import lz4.block

    if (dict(headers).get("content-encoding") or b"").strip().lower() == b"lz4":
        size = int.from_bytes(value[:4], "little")
        value = lz4.block.decompress(value[4:], uncompressed_size=size)
    elif value[:2] == b"\x1f\x8b":
        value = gzip.decompress(value)
    events: list[dict[str, Any]] = json.loads(json.loads(value)["data"])["properties"][
        "$snapshot_items"
    ]
    return [_uncompressed(event) for event in events]


def _uncompressed(event: dict[str, Any]) -> dict[str, Any]:
    if event.pop("cv", None) is None:
        return event

    def field(text: str) -> Any:
        return json.loads(gzip.decompress(text.encode("latin-1")))

    if event["type"] == 2:
        event["data"] = field(event["data"])
    elif event["type"] == 3:
        names = {0: ("texts", "attributes", "removes", "adds"), 8: ("adds", "removes")}
        for name in names.get(event["data"].get("source"), ()):
            if event["data"].get(name) is not None:
                event["data"][name] = field(event["data"][name])
    return event


WARN_LEVELS = ("warn", "countReset")
ERROR_LEVELS = ("error", "assert")


def console_counts(levels: Iterable[str]) -> dict[str, int]:
    """The summary's console figures for messages of these levels (issue 13's rule:
    warn and countReset are warnings, error and assert errors, any other level a log)."""
    levels = list(levels)
    warns = sum(level in WARN_LEVELS for level in levels)
    errors = sum(level in ERROR_LEVELS for level in levels)
    return {
        "console_log_count": len(levels) - warns - errors,
        "console_warn_count": warns,
        "console_error_count": errors,
    }
