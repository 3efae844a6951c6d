"""Session statistics from rrweb events: pure functions, one decode per batch.

Definitions (kept comparable with the best-known anchor):

* click: type 3, source 2 (mouse interaction), data.type in {2 click, 3 context menu,
  4 double click, 9 touch end}; keypress: type 3, source 5 (input); mouse activity:
  type 3, source in {1 mouse move, 2 mouse interaction, 6 touch move};
* console log / warn / error: type 6 events of plugin `rrweb/console@1` by payload level:
  warn and countReset are warnings, error and assert are errors, and every other level
  (log, info, debug, table, count, group, trace, dir, ...) is a log;
* urls: type 4 (meta) `data.href`, else `data.payload.href`; the first url is the one
  with the earliest timestamp (ties: the smallest string);
* activity: an event is active if type 3 with source in {1..7, 12}; active events
  closer than ACTIVITY_GAP_MS form a segment, and active milliseconds are the sum of the
  segment durations, a segment of one instant counting 1 ms. Segments of a batch are
  kept merged, and merging is associative, so batches (and windows) of a session can be
  combined in any order into the exact session figure;
* rage clicks: in each browser window, its clicks (type 3, source 2, data.type 2, with
  numeric data.x/data.y) in time order (equal timestamps keep their order in the
  batch); a rage click is a maximal run of at least RAGE_MIN_CLICKS consecutive clicks,
  each at most RAGE_GAP_MS after and RAGE_RADIUS_PX (Euclidean) from the previous one.
  A batch keeps its clicks as one ClickSpan (first and last click, the runs it starts
  and ends with, its rage runs); spans of a window in time order join exactly, so a run
  crossing batches, parts or windows counts once (streams.clicks says when it is exact).

How two figures merge is declared per field in sinks.clickhouse.summary and done here
(`merge_figures`), the same rule the view applies in SQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import msgspec

from sinks.clickhouse.summary import (
    ACTIVITY_GAP_MS,
    MAX_SEGMENTS,
    MAX_URLS,
    NO_URL_TIMESTAMP,
    SessionFigures,
)
from streams.clicks import span_of
from streams.dlq import Rejected

ACTIVE_SOURCES = frozenset({1, 2, 3, 4, 5, 6, 7, 12})
CLICK_TYPES = frozenset({2, 3, 4, 9})
MOUSE_SOURCES = frozenset({1, 2, 6})
CONSOLE_PLUGIN = "rrweb/console@1"
# console level -> index in (log, warn, error); a level not listed counts as a log
LOG_LEVELS = {"warn": 1, "countReset": 1, "error": 2, "assert": 2}
# Caps that keep every record the worker produces (statistics, window changelog values)
# far below Kafka's 1 MB default whatever the input: a batch or part keeps its first
# MAX_URLS distinct urls, each cut to MAX_URL_CHARS, at most MAX_SEGMENTS activity
# segments (beyond that the closest segments are joined, which can only add active time)
# and MAX_CLICK_SPANS click spans (beyond that, neighbours of a window are joined).
MAX_URL_CHARS = 1000
MAX_COORDINATE = 1e9  # a click farther out than this has no usable position
# rrweb timestamps are epoch milliseconds; anything outside 2000..2100 is corrupt.
MIN_TS, MAX_TS = 946_684_800_000, 4_102_444_800_000


# gc=False: a batch decodes into hundreds of these; untracked structs halve the decode
# time (bench/pipeline.py), and they can hold no reference cycle.
class _Payload(msgspec.Struct, gc=False):
    level: Any = None
    href: Any = None


class _Data(msgspec.Struct, gc=False):
    source: Any = None
    type: Any = None
    x: Any = None
    y: Any = None
    href: Any = None
    plugin: Any = None
    payload: msgspec.Raw = msgspec.Raw()  # decoded only for meta and console events


class _Event(msgspec.Struct, gc=False):
    type: int
    timestamp: int | float
    data: _Data | None = None


_events_decoder = msgspec.json.Decoder(list[_Event])
_payload_decoder: msgspec.json.Decoder[_Payload] = msgspec.json.Decoder(_Payload)


def _payload(data: _Data) -> _Payload | None:
    if not data.payload:
        return None
    try:
        return _payload_decoder.decode(data.payload)
    except msgspec.DecodeError:
        return None


def merge_segments(segments: Iterable[tuple[int, int]]) -> list[tuple[int, int]]:
    """Sort and join segments whose gap is at most ACTIVITY_GAP_MS."""
    merged: list[tuple[int, int]] = []
    for start, end in sorted(segments):
        if merged and start - merged[-1][1] <= ACTIVITY_GAP_MS:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


def cap_segments(segments: list[tuple[int, int]], limit: int) -> list[tuple[int, int]]:
    """Merged segments, at most `limit` of them: the smallest gaps are joined first."""
    if len(segments) <= limit:
        return segments
    gaps = sorted((segments[i + 1][0] - segments[i][1], i) for i in range(len(segments) - 1))
    joined = {i for _, i in gaps[: len(segments) - limit]}
    capped = [segments[0]]
    for i, segment in enumerate(segments[1:]):
        if i in joined:
            capped[-1] = (capped[-1][0], max(capped[-1][1], segment[1]))
        else:
            capped.append(segment)
    return capped


def active_milliseconds(segments: Iterable[tuple[int, int]]) -> int:
    return sum(max(end - start, 1) for start, end in merge_segments(segments))


def _position(data: _Data) -> tuple[float, float] | None:
    """A click's (x, y), if both are numbers a screen can have."""
    x, y = data.x, data.y
    numbers = isinstance(x, int | float) and isinstance(y, int | float)
    if numbers and abs(x) <= MAX_COORDINATE and abs(y) <= MAX_COORDINATE:
        return float(x), float(y)
    return None


class _Figures:
    """The figures of one batch, counted in one pass over its events (summarize_events
    counts incremental events inline; the rarer kinds have a method each)."""

    def __init__(self, timestamp: int) -> None:
        self.first = self.last = timestamp
        self.has_full = False
        self.counts = [0, 0, 0]  # click, keypress, mouse activity
        self.console = [0, 0, 0]  # log, warn, error
        self.first_url, self.first_url_ts = "", NO_URL_TIMESTAMP
        self.urls: dict[str, None] = {}
        self.active: list[int] = []
        self.clicks: list[tuple[int, float, float]] = []

    def click(self, ts: int, data: _Data) -> None:
        position = _position(data)
        if position is not None:
            self.clicks.append((ts, *position))

    def meta(self, ts: int, data: _Data) -> None:
        href = data.href
        if not isinstance(href, str):
            extra = _payload(data)
            href = extra.href if extra is not None else None
        if isinstance(href, str) and href:
            href = href[:MAX_URL_CHARS]
            if len(self.urls) < MAX_URLS:
                self.urls.setdefault(href)
            if (ts, href) < (self.first_url_ts, self.first_url):
                self.first_url, self.first_url_ts = href, ts

    def plugin(self, data: _Data) -> None:
        if data.plugin != CONSOLE_PLUGIN:
            return
        extra = _payload(data)
        if extra is not None and isinstance(extra.level, str):
            self.console[LOG_LEVELS.get(extra.level, 0)] += 1

    def result(self, event_count: int, window_id: str) -> SessionFigures:
        self.clicks.sort(key=lambda click: click[0])  # stable: equal times keep their order
        span = span_of(window_id, self.clicks)
        return SessionFigures(
            distinct_id="",
            min_first_timestamp=self.first,
            max_last_timestamp=self.last,
            first_url=self.first_url,
            first_url_timestamp=self.first_url_ts,
            all_urls=list(self.urls),
            click_count=self.counts[0],
            keypress_count=self.counts[1],
            mouse_activity_count=self.counts[2],
            console_log_count=self.console[0],
            console_warn_count=self.console[1],
            console_error_count=self.console[2],
            active_segments=cap_segments(
                merge_segments((ts, ts) for ts in self.active), MAX_SEGMENTS
            ),
            size=0,
            event_count=event_count,
            message_count=0,
            has_full_snapshot=self.has_full,
            window_ids=[window_id] if window_id else [],
            retention_days=0,
            click_spans=[] if span is None else [span],
        )


def summarize_events(payload: bytes, window_id: str = "") -> SessionFigures:
    """Every figure of one batch that its events tell, from one typed decode of them
    (its distinct_id, size, message count and retention come from its messages)."""
    try:
        events = _events_decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise Rejected("invalid_events", "decode", str(exc)) from None
    except RecursionError:
        raise Rejected("too_deep", "decode", "rrweb events nested too deeply") from None
    if not events:
        raise Rejected("invalid_events", "decode", "empty list of events")
    figures = _Figures(int(events[0].timestamp))
    first = last = figures.first
    active, counts = figures.active, figures.counts
    for event in events:
        ts = int(event.timestamp)
        if ts < first:
            first = ts
        elif ts > last:
            last = ts
        kind, data = event.type, event.data
        if kind == 2:
            figures.has_full = True
        if data is None:
            continue
        if kind == 3:  # the most frequent kind, counted inline (a call per event costs)
            # any JSON may sit in these fields: only ints count (and are hashable)
            source = data.source if isinstance(data.source, int) else None
            if source in ACTIVE_SOURCES:
                active.append(ts)
            if source in MOUSE_SOURCES:
                counts[2] += 1
            if source == 2 and isinstance(data.type, int) and data.type in CLICK_TYPES:
                counts[0] += 1
                if data.type == 2:
                    figures.click(ts, data)
            elif source == 5:
                counts[1] += 1
        elif kind == 4:
            figures.meta(ts, data)
        elif kind == 6:
            figures.plugin(data)
    if first < MIN_TS or last > MAX_TS:
        raise Rejected("invalid_events", "decode", f"timestamp out of range: {first}..{last}")
    figures.first, figures.last = first, last
    return figures.result(len(events), window_id)
