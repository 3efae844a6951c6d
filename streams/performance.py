"""Network and performance recordings: one *report* of PerformanceEntry objects in (one
page view's entries, one message of `performance_events_batches`, which the topic's name
and the browser SDK call a batch), one ClickHouse row per entry out. Pure.

The report is validated and attributed to a team like a snapshot (same DLQ reasons).
Entries are decoded one by one, so a malformed entry is reported (the report goes to the
DLQ as `invalid_entry`, naming it) without losing the valid entries next to it. Each
row has a deterministic `entry_id` (hash of type, name and start time within its page
view), the last part of the table's replacing key, so replays leave one row per entry.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any

import msgspec

from config.teams import TeamRegistry
from sinks.clickhouse.schema import PERFORMANCE_COLUMNS
from streams.dlq import Rejected
from streams.parse import (
    UNBOUNDED_TIME,
    TimeBounds,
    authorize,
    check_size,
    decode_strict,
    distinct_id_of,
    valid_id,
)

Number = int | float


class PerformanceReport(msgspec.Struct):
    """One message on `performance_events_batches` (DESIGN input shape)."""

    token: str
    session_id: str
    pageview_id: str
    time_origin: Number
    entries: list[msgspec.Raw]
    team_id: int | None = None
    distinct_id: str | int | None = None
    window_id: str | None = None
    current_url: str = ""


class PerformanceEntry(msgspec.Struct, rename="camel"):
    """The fields of resource, navigation, paint and largest-contentful-paint entries."""

    entry_type: str
    start_time: Number
    name: str = ""
    duration: Number = 0
    # resource and navigation timing
    redirect_start: Number | None = None
    redirect_end: Number | None = None
    worker_start: Number | None = None
    fetch_start: Number | None = None
    domain_lookup_start: Number | None = None
    domain_lookup_end: Number | None = None
    connect_start: Number | None = None
    secure_connection_start: Number | None = None
    connect_end: Number | None = None
    request_start: Number | None = None
    response_start: Number | None = None
    response_end: Number | None = None
    transfer_size: int | None = None
    encoded_body_size: int | None = None
    decoded_body_size: int | None = None
    initiator_type: str | None = None
    next_hop_protocol: str | None = None
    render_blocking_status: str | None = None
    response_status: int | None = None
    # navigation only
    unload_event_start: Number | None = None
    unload_event_end: Number | None = None
    dom_interactive: Number | None = None
    dom_content_loaded_event_start: Number | None = None
    dom_content_loaded_event_end: Number | None = None
    dom_complete: Number | None = None
    load_event_start: Number | None = None
    load_event_end: Number | None = None
    type: str | None = None
    redirect_count: int | None = None
    # largest-contentful-paint
    render_time: Number | None = None
    load_time: Number | None = None
    size: int | None = None
    element: str | None = None
    url: str | None = None


ENTRY_FIELDS = PerformanceEntry.__struct_fields__
MAX_ENTRIES = 10_000

_report_decoder = msgspec.json.Decoder(PerformanceReport)
_entry_decoder = msgspec.json.Decoder(PerformanceEntry)


def entry_id(pageview_id: str, entry: PerformanceEntry) -> int:
    """Stable identity of an entry within its page view (64 bits)."""
    key = f"{pageview_id}\x00{entry.entry_type}\x00{entry.name}\x00{float(entry.start_time)!r}"
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


# Column ranges (sinks.clickhouse._PERFORMANCE_TYPES): an entry outside them is refused
# here, by name, instead of failing the insert of every row next to it.
MAX_MS = 1e10  # ~115 days after the page's time origin
MAX_TEXT_CHARS = 8192
_UINT16 = ("response_status", "redirect_count")
_SIZES = ("transfer_size", "encoded_body_size", "decoded_body_size", "size")
_TEXTS = ("name", "element", "url", "entry_type", "initiator_type", "next_hop_protocol", "type")


def entry_problem(entry: PerformanceEntry) -> str | None:
    """Why an entry cannot be a row, or None."""
    for name in ENTRY_FIELDS:
        value = getattr(entry, name)
        if value is None:
            continue
        if name in _UINT16 and not 0 <= value <= 0xFFFF:
            return f"{name} {value} out of range"
        if name in _SIZES and not 0 <= value < 2**62:
            return f"{name} {value} out of range"
        if name in _TEXTS and len(value) > MAX_TEXT_CHARS:
            return f"{name} longer than {MAX_TEXT_CHARS} characters"
        if isinstance(value, float | int) and not -MAX_MS <= value <= MAX_MS:
            return f"{name} {value} is not a time in milliseconds"
    return None


def parse_performance(
    raw: bytes | None,
    registry: TeamRegistry,
    max_bytes: int,
    now_ms: float = 0.0,
    bounds: TimeBounds = UNBOUNDED_TIME,
) -> tuple[list[tuple[Any, ...]], Rejected | None]:
    """Rows for the valid entries, and a rejection naming any invalid ones.

    Raises Rejected when the report itself is unusable (then no row is produced).
    """
    check_size(raw, max_bytes)
    report = decode_strict(_report_decoder, raw, "parse")
    assert isinstance(report, PerformanceReport)
    team = authorize(registry, report.token, report.team_id)
    if len(report.entries) > MAX_ENTRIES:
        raise Rejected("oversized", "validate", f"{len(report.entries)} entries > {MAX_ENTRIES}")
    if not report.time_origin > 0:
        raise Rejected("invalid_event", "validate", "time_origin must be epoch milliseconds")
    bounds.check(report.time_origin, report.time_origin, now_ms)
    ids = (
        valid_id(report.session_id, "session_id", required=True),
        valid_id(report.window_id, "window_id", required=False),
        valid_id(report.pageview_id, "pageview_id", required=True),
    )
    head = {
        "team_id": team.team_id,
        "distinct_id": distinct_id_of(report.distinct_id),
        "session_id": ids[0],
        "window_id": ids[1],
        "pageview_id": ids[2],
        "current_url": report.current_url[:2000],
    }
    rows, bad = [], []
    for index, raw_entry in enumerate(report.entries):
        try:
            entry = _entry_decoder.decode(raw_entry)
        except msgspec.DecodeError as exc:
            bad.append(f"entry {index}: {exc}")
            continue
        except RecursionError:
            bad.append(f"entry {index}: nested too deeply")
            continue
        why = entry_problem(entry)
        if why is not None:
            bad.append(f"entry {index}: {why}")
            continue
        values = head | {name: getattr(entry, name) for name in ENTRY_FIELDS}
        values["timestamp"] = round(report.time_origin + entry.start_time)
        values["entry_id"] = entry_id(report.pageview_id, entry)
        rows.append(tuple(values[column] for column in PERFORMANCE_COLUMNS))
    problem = Rejected("invalid_entry", "validate", "; ".join(bad)) if bad else None
    return rows, problem


_OWNER = tuple(
    PERFORMANCE_COLUMNS.index(c) for c in ("team_id", "session_id", "distinct_id", "timestamp")
)


def kept_entries(
    rows: list[tuple[Any, ...]], erased: Callable[[int, str, str, int], bool]
) -> list[tuple[Any, ...]]:
    """The rows whose entry is not erased: `erased(team, session, person, timestamp)`
    (an entry's own moment decides the `before` rule)."""
    team, session, person, moment = _OWNER
    return [row for row in rows if not erased(row[team], row[session], row[person], row[moment])]
