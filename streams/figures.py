"""Session figures as data: merging two of them, and telling whether a statistics record
could have come from a decoded batch. Both go field by field over the declaration in
sinks.clickhouse.summary, so a new figure needs no code here unless it brings a new
merge rule.

Every merge rule is commutative and associative (sums, min/max, capped sorted sets,
joined segments, sorted click spans), so a part's figures are the same whatever the
order its batches arrived in, and the view can merge parts in any number and order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sinks.clickhouse.summary import FIGURES, NO_URL_TIMESTAMP, Column, Merge, SessionFigures
from streams.clicks import merge_spans
from streams.stats import MAX_COORDINATE, MAX_TS, MIN_TS, cap_segments, merge_segments

MAX_FIGURE = 2**40  # far above any real batch, far below what sums could overflow

Rule = Callable[[Any, Any, SessionFigures, SessionFigures, Column], Any]


def _earliest(x: Any, y: Any, a: SessionFigures, b: SessionFigures, column: Column) -> Any:
    return min((getattr(a, column.by), x), (getattr(b, column.by), y))[1]


_RULES: dict[Merge, Rule] = {
    Merge.SUM: lambda x, y, a, b, c: x + y,
    Merge.MIN: lambda x, y, a, b, c: min(x, y),
    Merge.MAX: lambda x, y, a, b, c: max(x, y),
    Merge.ANY: lambda x, y, a, b, c: x or y,
    Merge.EARLIEST: _earliest,
    Merge.UNION: lambda x, y, a, b, c: sorted(set(x) | set(y))[: c.cap],
    Merge.SEGMENTS: lambda x, y, a, b, c: cap_segments(merge_segments(x + y), c.cap),
    Merge.CLICK_SPANS: lambda x, y, a, b, c: merge_spans(x, y, c.cap),
}


# The rule of every field, in field order: merging builds the figures positionally.
_FIELD_RULES = [(name, _RULES[column.merge], column) for name, column in FIGURES.items()]


def merge_figures(a: SessionFigures, b: SessionFigures) -> SessionFigures:
    """The figures of both, each merged by its declared rule."""
    return SessionFigures(
        *[rule(getattr(a, name), getattr(b, name), a, b, c) for name, rule, c in _FIELD_RULES]
    )


def _time(value: int) -> bool:
    return MIN_TS <= value <= MAX_TS


def _plausible(value: Any, column: Column) -> bool:
    if column.merge is Merge.SEGMENTS:
        return all(_time(start) and _time(end) for start, end in value)
    if column.merge is Merge.CLICK_SPANS:
        return all(
            _time(s.first_timestamp)
            and _time(s.last_timestamp)
            and all(abs(v) <= MAX_COORDINATE for v in (s.first_x, s.first_y, s.last_x, s.last_y))
            and all(0 <= n < MAX_FIGURE for n in (s.lead, s.trail, s.clicks, s.rage))
            for s in value
        )
    if column.type.startswith("DateTime"):
        return _time(value)
    if column.type == "Int64":  # a timestamp that may be absent (first_url_timestamp)
        return value == NO_URL_TIMESTAMP or _time(value)
    if column.type.startswith("UInt"):
        return 0 <= value < MAX_FIGURE
    return True


def plausible_figures(figures: SessionFigures) -> bool:
    """Statistics records are ours, but their topic can be written to: figures that no
    decoded batch can have (they would overflow a window's sums, or a column) are
    refused."""
    return all(_plausible(getattr(figures, name), c) for name, c in FIGURES.items())
