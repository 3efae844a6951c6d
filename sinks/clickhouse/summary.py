"""The session summary, declared once: `SessionFigures` is the only place its figures are
listed. Each field is a column of `session_replay_events` (one row per window part) and
carries, in its annotation, its ClickHouse type, how two partial figures merge (the same
rule in Python, for the parts a worker holds, and in SQL, for the view that merges the
parts of a session) and what the view `session_replay_summary` shows for it.

Everything else derives from this declaration: the table's DDL and the view
(`sinks.clickhouse.schema`), the insert's column list, rows built by column name, the
read API's fields (`sinks.clickhouse.queries`), the Python merge and the plausibility
check of statistics records (`streams.figures`). Adding a figure means adding a field
here and computing it in `streams.stats.summarize_events` (and saying so in the README);
only a figure that merges by a new rule also adds that rule to `streams.figures`.

Evolution rule. `SessionFigures` is stored, inside the `summarize` table's changelog
records, as a msgpack *array*: its field order is a wire format. Append new fields at
the end, with a default that means "nothing counted" (so records written before the
field existed decode with it), never reorder, rename the type or remove a field. Field
names are free to change (they are not encoded) but are column names, so they change
with a migration.
"""

from __future__ import annotations

import enum
from typing import Annotated, Any, NamedTuple, get_type_hints

import msgspec

NO_URL_TIMESTAMP = 2**62  # first_url_timestamp of figures without a url


class Merge(enum.Enum):
    """How two partial figures combine; every rule is commutative and associative."""

    SUM = "sum"
    MIN = "min"
    MAX = "max"
    ANY = "any"  # booleans: true if either is
    EARLIEST = "earliest"  # the value of the figures that start first (see `by`)
    UNION = "union"  # sorted distinct values, at most `cap`
    SEGMENTS = "segments"  # activity segments joined across a gap (streams.stats)
    CLICK_SPANS = "click_spans"  # clicks of a window, for rage clicks (streams.clicks)


class Column(NamedTuple):
    """One summary column: its type in the parts table, its merge, and the view's
    expression (over the parts of a session) with the name it shows it under."""

    type: str
    merge: Merge
    view: str = ""  # default: the merge's own aggregate of the column
    out: str = ""  # default: the column's name; HIDDEN keeps it out of the view
    by: str = ""  # Merge.EARLIEST: the field whose smallest value picks the winner
    cap: int = 0  # Merge.UNION / SEGMENTS / CLICK_SPANS: most values a part keeps


HIDDEN = "-"
MAX_URLS = 100
MAX_WINDOW_IDS = 100
MAX_SEGMENTS = 1000
MAX_CLICK_SPANS = 200
ACTIVITY_GAP_MS = 5000
RAGE_GAP_MS = 1000
RAGE_RADIUS_PX = 30
RAGE_MIN_CLICKS = 3


class ClickSpan(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """The clicks of one browser window over some stretch of time, reduced to what rage
    clicks need: its first and last click, the length of the run of linked clicks it
    starts and ends with, and the rage runs it holds. Spans of one window in time order
    join into the span of all of them (streams.clicks.join_spans), which counts every run
    once, also one that crosses from a batch, a part or a window into the next."""

    window_id: str
    first_timestamp: int
    first_x: float
    first_y: float
    last_timestamp: int
    last_x: float
    last_y: float
    lead: int  # clicks in the run the span starts with
    trail: int  # clicks in the run the span ends with
    clicks: int
    rage: int  # runs of at least RAGE_MIN_CLICKS clicks, those at both ends included


_SPAN_TYPE = (
    "Array(Tuple(String, Int64, Float64, Float64, Int64, Float64, Float64, "
    "UInt32, UInt32, UInt32, UInt32))"
)
_TIME = "DateTime64(3, 'UTC')"

# Active milliseconds from the sorted segments of all parts: join segments closer than
# the gap, sum the durations (a segment of one instant counts 1 ms).
_ACTIVE_MS = f"""if(empty(arraySort(groupArrayArray(active_segments)) AS segs), 0,
       (arrayFold((acc, s) -> if(s.1 - acc.3 > {ACTIVITY_GAP_MS},
                                 (toInt64(acc.1 + greatest(acc.3 - acc.2, 1)), s.1, s.2),
                                 (acc.1, acc.2, greatest(acc.3, s.2))),
                  arrayPopFront(segs), (toInt64(0), segs[1].1, segs[1].2)) AS f).1
       + greatest(f.3 - f.2, 1))"""

# Rage clicks from the sorted click spans of all parts: the fold of streams.stats
# (rage_clicks) in SQL. A span linked to the one before (same window, its first click at
# most RAGE_GAP_MS after and RAGE_RADIUS_PX from the previous last click) joins the run
# the accumulator ends with to the run the span starts with.
_LINKED = (
    f"s.1 = acc.2 AND s.2 - acc.3 BETWEEN 0 AND {RAGE_GAP_MS} "
    f"AND pow(s.3 - acc.4, 2) + pow(s.4 - acc.5, 2) <= {RAGE_RADIUS_PX**2}"
)
_RAGE = f"""arrayFold((acc, s) -> (
           toInt64(acc.1 + s.11 + if({_LINKED},
               toInt64(acc.6 + s.8 >= {RAGE_MIN_CLICKS}) - toInt64(acc.6 >= {RAGE_MIN_CLICKS})
               - toInt64(s.8 >= {RAGE_MIN_CLICKS}), 0)),
           s.1, s.5, s.6, s.7,
           if(({_LINKED}) AND s.8 = s.10, toInt64(acc.6 + s.8), toInt64(s.9))),
       arraySort(s -> (s.1, s.2, s.5, s), groupArrayArray(click_spans)),
       (toInt64(0), '', toInt64(-{2**62}), toFloat64(0), toFloat64(0), toInt64(0))).1"""


class SessionFigures(msgspec.Struct, array_like=True):
    """Session statistics over some batches: of one batch (streams.stats), of a window
    part (streams.windows), and, merged by the view, of a whole session."""

    distinct_id: Annotated[str, Column("String", Merge.EARLIEST, by="min_first_timestamp")]
    min_first_timestamp: Annotated[int, Column(_TIME, Merge.MIN, out="start_time")]
    max_last_timestamp: Annotated[int, Column(_TIME, Merge.MAX, out="end_time")]
    first_url: Annotated[str, Column("String", Merge.EARLIEST, by="first_url_timestamp")]
    first_url_timestamp: Annotated[int, Column("Int64", Merge.MIN, out=HIDDEN)]
    all_urls: Annotated[list[str], Column("Array(String)", Merge.UNION, cap=MAX_URLS)]
    click_count: Annotated[int, Column("UInt64", Merge.SUM)]
    keypress_count: Annotated[int, Column("UInt64", Merge.SUM)]
    mouse_activity_count: Annotated[int, Column("UInt64", Merge.SUM)]
    console_log_count: Annotated[int, Column("UInt64", Merge.SUM)]
    console_warn_count: Annotated[int, Column("UInt64", Merge.SUM)]
    console_error_count: Annotated[int, Column("UInt64", Merge.SUM)]
    active_segments: Annotated[
        list[tuple[int, int]],
        Column(
            "Array(Tuple(Int64, Int64))",
            Merge.SEGMENTS,
            _ACTIVE_MS,
            "active_milliseconds",
            cap=MAX_SEGMENTS,
        ),
    ]
    size: Annotated[int, Column("UInt64", Merge.SUM)]
    event_count: Annotated[int, Column("UInt64", Merge.SUM)]
    message_count: Annotated[int, Column("UInt64", Merge.SUM)]
    has_full_snapshot: Annotated[bool, Column("Bool", Merge.ANY)]
    window_ids: Annotated[
        list[str],
        Column(
            "Array(String)",
            Merge.UNION,
            "length(groupUniqArrayArray(window_ids))",
            "window_count",
            cap=MAX_WINDOW_IDS,
        ),
    ]
    retention_days: Annotated[int, Column("UInt16", Merge.MAX)]
    click_spans: Annotated[
        list[ClickSpan],
        Column(_SPAN_TYPE, Merge.CLICK_SPANS, _RAGE, "rage_click_count", cap=MAX_CLICK_SPANS),
    ] = []


def annotations_of(struct: type[msgspec.Struct]) -> dict[str, Any]:
    """Each field of `struct` and the first `Annotated` metadata of its type, in order:
    how a struct declares its columns here and in sinks.clickhouse.schema."""
    hints = get_type_hints(struct, include_extras=True)
    return {name: hints[name].__metadata__[0] for name in struct.__struct_fields__}


FIGURES: dict[str, Column] = annotations_of(SessionFigures)

_AGGREGATE = {Merge.SUM: "sum", Merge.MIN: "min", Merge.MAX: "max", Merge.ANY: "max"}


def view_expression(name: str, column: Column) -> str:
    """`<expression> AS <name>` of one figure in the session view."""
    if column.view:
        expression = column.view
    elif column.merge is Merge.EARLIEST:
        expression = f"argMin({name}, ({column.by}, {name}))"
    elif column.merge is Merge.UNION:
        expression = f"arraySort(groupUniqArrayArray({name}))"
    else:
        expression = f"{_AGGREGATE[column.merge]}({name})"
    return f"{expression} AS {column.out or name}"


VIEW_FIGURES = tuple(
    (column.out or name) for name, column in FIGURES.items() if column.out != HIDDEN
)
