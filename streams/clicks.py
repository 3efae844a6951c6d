"""Rage clicks, exactly, from batches that arrive in any order: pure functions over
ClickSpan (sinks.clickhouse.summary).

A rage click is a maximal run of at least RAGE_MIN_CLICKS consecutive clicks of one
browser window, each at most RAGE_GAP_MS after and at most RAGE_RADIUS_PX from the one
before. Whether a run exists depends on clicks that may sit in other batches, parts or
windows, so a batch does not count its runs alone: it keeps its clicks as a span, the
few facts that decide how it joins its neighbours (first and last click, the length of
the runs it starts and ends with, its complete rage runs). Joining the spans of a window
in time order (`join_spans`) is associative, so spans are kept sorted and joined only
where a figure is read (`rage_clicks` here, the same fold in the session view's SQL).

Exact as long as a window's batches do not overlap in time, as rrweb's never do; the
one order it cannot know is between two batches that each lie wholly at the same
instant.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from itertools import groupby, pairwise

import msgspec

from sinks.clickhouse.summary import RAGE_GAP_MS, RAGE_MIN_CLICKS, RAGE_RADIUS_PX, ClickSpan

Click = tuple[int, float, float]  # timestamp, x, y


def linked(before: Click, after: Click) -> bool:
    """Whether `after` continues the run of `before` (it follows it in time order)."""
    gap = after[0] - before[0]
    dx, dy = after[1] - before[1], after[2] - before[2]
    return 0 <= gap <= RAGE_GAP_MS and dx * dx + dy * dy <= RAGE_RADIUS_PX**2


def span_of(window_id: str, clicks: Sequence[Click]) -> ClickSpan | None:
    """The span of a window's clicks, given in time order; None without clicks."""
    if not clicks:
        return None
    runs = [1]
    for before, after in pairwise(clicks):
        if linked(before, after):
            runs[-1] += 1
        else:
            runs.append(1)
    first, last = clicks[0], clicks[-1]
    return ClickSpan(
        window_id,
        *first,
        *last,
        lead=runs[0],
        trail=runs[-1],
        clicks=len(clicks),
        rage=sum(1 for run in runs if run >= RAGE_MIN_CLICKS),
    )


def join_spans(a: ClickSpan, b: ClickSpan) -> ClickSpan:
    """The span of a window's clicks in `a` followed by those in `b`."""
    lead, trail, rage = a.lead, b.trail, a.rage + b.rage
    before = (a.last_timestamp, a.last_x, a.last_y)
    if linked(before, (b.first_timestamp, b.first_x, b.first_y)):
        joined = a.trail + b.lead  # the run a ends with goes on into b
        rage += _rage(joined) - _rage(a.trail) - _rage(b.lead)
        lead = joined if a.lead == a.clicks else a.lead
        trail = joined if b.trail == b.clicks else b.trail
    return ClickSpan(
        a.window_id,
        a.first_timestamp,
        a.first_x,
        a.first_y,
        b.last_timestamp,
        b.last_x,
        b.last_y,
        lead,
        trail,
        a.clicks + b.clicks,
        rage,
    )


def _rage(run: int) -> int:
    return 1 if run >= RAGE_MIN_CLICKS else 0


def _order(span: ClickSpan) -> tuple[object, ...]:
    """Spans in time order: by window, first then last click (a span of one instant
    goes before one that starts then and goes on), then by all they hold, so that the
    order is total. The session view sorts by the same key."""
    return (
        span.window_id,
        span.first_timestamp,
        span.last_timestamp,
        *msgspec.structs.astuple(span),
    )


def rage_clicks(spans: Iterable[ClickSpan]) -> int:
    """Rage clicks of all these spans: per window, joined in time order."""
    total = 0
    for _, group in groupby(sorted(spans, key=_order), key=lambda span: span.window_id):
        ordered = list(group)
        joined = ordered[0]
        for span in ordered[1:]:
            joined = join_spans(joined, span)
        total += joined.rage
    return total


def merge_spans(a: list[ClickSpan], b: list[ClickSpan], cap: int) -> list[ClickSpan]:
    """The spans of both (each sorted), sorted; beyond `cap`, the earliest neighbours of
    one window are joined (exact unless a later batch falls between them), then extra
    spans dropped. Inserting the few spans of a batch costs O(log n) comparisons each."""
    spans, extra = (list(a), b) if len(a) >= len(b) else (list(b), a)
    for span in extra:
        bisect.insort(spans, span, key=_order)
    index = 0
    while len(spans) > cap and index < len(spans) - 1:
        left, right = spans[index], spans[index + 1]
        if left.window_id == right.window_id:
            spans[index : index + 2] = [join_spans(left, right)]
        else:
            index += 1
    return spans[:cap]
