"""Reading a session back, without its I/O: the archive's line format (windowed
``["<window_id>",<event>]`` lines, and the bare lines of older objects read as window
""), events coming out of both tiers in timestamp order, each once, the `after_ms`
bound, and events whose JSON holds raw newlines staying on one line (the same reads
on ClickHouse and S3: tests/e2e/test_archive*.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, Iterable
from typing import Any

import pytest
from clickhouse_connect.driver.binding import bind_query
from hypothesis import given
from hypothesis import strategies as st

from retention.read import (
    Batch,
    Event,
    merge_events,
    ordered_events,
    parse_line,
    windowed_line,
)
from sinks.clickhouse.queries import hot_page

# (window id, [(timestamp, text with an indent or not)]) per batch
WINDOWS = st.sampled_from(["w-1", "w-2", "", 'w"\\\n\u2028é'])
BATCHES = st.lists(
    st.tuples(WINDOWS, st.lists(st.integers(0, 40), min_size=1, max_size=6), st.booleans()),
    min_size=1,
    max_size=8,
)


def batch_of(number: int, window_id: str, stamps: list[int], indent: bool) -> Batch:
    """A raw row's batch; `indent` writes its JSON over many lines (CR LF between
    tokens, inside each event too), as valid JSON may be."""
    events = [
        {"type": 3, "timestamp": ts, "data": {"n": [number, i]}} for i, ts in enumerate(stamps)
    ]
    text = json.dumps(events, indent=1 if indent else None)
    return Batch(min(stamps), window_id, text.replace("\n", "\r\n") if indent else text)


def batches_of(drawn: list[tuple[str, list[int], bool]]) -> list[Batch]:
    """In first-timestamp order, as the hot pages come (stable: drawn order on ties)."""
    made = [batch_of(n, w, stamps, indent) for n, (w, stamps, indent) in enumerate(drawn)]
    return sorted(made, key=lambda b: b.first)


def reference(
    batches: list[Batch], after_ms: int | None = None, tiers: list[int] | None = None
) -> list[list[Any]]:
    """[window, event] of every event at or after `after_ms`, in timestamp order (ties:
    the batch's tier (its source) if given, batch order, then position), by plain json
    and sorting."""
    keyed = [
        (
            (event["timestamp"], tiers[number] if tiers else 0, number, index),
            [batch.window_id, event],
        )
        for number, batch in enumerate(batches)
        for index, event in enumerate(json.loads(batch.events))
        if after_ms is None or event["timestamp"] >= after_ms
    ]
    return [pair for _, pair in sorted(keyed, key=lambda k: k[0])]


def one_line(line: bytes) -> bytes:
    assert b"\n" not in line and b"\r" not in line, line
    return line


def test_a_windowed_line_is_the_window_as_a_json_string_then_the_event() -> None:
    event = b'{"type":3,"timestamp":5,"data":{}}'
    assert windowed_line("w-1", event) == b'["w-1",{"type":3,"timestamp":5,"data":{}}]'
    odd = 'w"\\\n\u2028é'
    assert json.loads(windowed_line(odd, event)) == [odd, json.loads(event)]
    assert parse_line(windowed_line(odd, event)) == (5, odd, event)


def test_a_bare_line_of_an_older_object_is_an_event_of_an_unknown_window() -> None:
    event = b'{"type":2,"timestamp":1700000000000.5,"data":{"node":{}}}'
    assert parse_line(event) == (1_700_000_000_000, "", event)


@pytest.mark.parametrize(
    "line",
    [b'[ "w-1" , {"timestamp":7, "data":[1]} ]', b'["w\\u002d1",{"timestamp":7, "data":[1]}]'],
)
def test_a_windowed_line_written_another_way_still_parses(line: bytes) -> None:
    timestamp, window_id, event = parse_line(line)
    assert (timestamp, window_id) == (7, "w-1")
    assert json.loads(event) == {"timestamp": 7, "data": [1]}


def test_raw_newlines_inside_an_event_become_spaces_and_other_bytes_stay() -> None:
    text = '[{"type":3,\n"timestamp":5,"data":{"t":"a\\nb"}},\r\n{"type":3,\r"timestamp":6}]'
    out = list(ordered_events([Batch(5, "w", text)]))
    assert [e[2] for e in out] == [
        b'{"type":3, "timestamp":5,"data":{"t":"a\\nb"}}',
        b'{"type":3, "timestamp":6}',
    ]
    compact = '[{"type":3,"timestamp":5,"data":{"t":"a\\nb \\r"}}]'
    assert [e[2] for e in ordered_events([Batch(5, "w", compact)])] == [compact[1:-1].encode()]


def test_after_ms_keeps_the_events_at_or_after_it_even_when_a_whole_batch_goes() -> None:
    batches = [batch_of(0, "a", [1, 9, 4], False), batch_of(1, "b", [2, 3], False)]
    batches.sort(key=lambda b: b.first)
    assert [(e[0], e[1]) for e in ordered_events(batches, after_ms=4)] == [
        (4, "a"),
        (9, "a"),
    ]
    assert list(ordered_events(batches, after_ms=10)) == []
    assert [e[0] for e in ordered_events(batches, after_ms=-5)] == [1, 2, 3, 4, 9]


@given(BATCHES, st.one_of(st.none(), st.integers(-1, 42)))
def test_hot_events_come_out_in_timestamp_order_on_one_line_each(
    drawn: list[tuple[str, list[int], bool]], after_ms: int | None
) -> None:
    batches = batches_of(drawn)
    out = list(ordered_events(batches, after_ms))
    assert [[w, json.loads(one_line(e))] for _, w, e in out] == reference(batches, after_ms)
    assert [ts for ts, _, _ in out] == [json.loads(e)["timestamp"] for _, _, e in out]


async def _source(events: Iterable[Event]) -> AsyncGenerator[Event, None]:
    for event in events:
        yield event


def _merged(sources: list[list[Event]]) -> list[Event]:
    async def run() -> list[Event]:
        return [e async for e in merge_events([_source(s) for s in sources])]

    return asyncio.run(run())


@given(st.lists(st.lists(st.integers(0, 30), max_size=8), max_size=5))
def test_tiers_merge_in_timestamp_order_each_event_once(stamps: list[list[int]]) -> None:
    sources = [
        [(ts, f"w{n}", f'{{"tag":"{n}.{i}"}}'.encode()) for i, ts in enumerate(sorted(s))]
        for n, s in enumerate(stamps)
    ]
    # ties: source order, then position in the source
    expected = sorted(
        (e for source in sources for e in source),
        key=lambda e: (e[0], *map(int, json.loads(e[2])["tag"].split("."))),
    )
    assert _merged(sources) == expected


@given(BATCHES, st.lists(st.integers(0, 2)), st.one_of(st.none(), st.integers(-1, 42)))
def test_windowed_read_is_the_sorted_pairs_and_unwrapping_it_gives_the_bare_read(
    drawn: list[tuple[str, list[int], bool]], tiers: list[int], after_ms: int | None
) -> None:
    """Batches spread over two archived parts (new and old line format) and the hot rows,
    read as session_lines does: the windowed lines are every (window, event) in timestamp
    order; their events are the bare read; a part of the old format says window ""."""
    batches = batches_of(drawn)
    tier = [tiers[n] if n < len(tiers) else 2 for n in range(len(batches))]
    chosen = [[b for b, t in zip(batches, tier, strict=True) if t == n] for n in range(3)]
    written = [
        [windowed_line(w, e) for _, w, e in ordered_events(chosen[0])],  # a part, as spilled
        [e for _, _, e in ordered_events(chosen[1])],  # a part of an older version
    ]
    sources = [
        [e for e in map(parse_line, lines) if after_ms is None or e[0] >= after_ms]
        for lines in written
    ]
    sources.append(list(ordered_events(chosen[2], after_ms)))
    merged = _merged(sources)
    windowed = [one_line(windowed_line(w, e)) for _, w, e in merged]
    bare = [one_line(e) for _, _, e in merged]

    older = {id(b) for b in chosen[1]}
    as_read = [Batch(b.first, "" if id(b) in older else b.window_id, b.events) for b in batches]
    pairs = [json.loads(line) for line in windowed]
    assert pairs == reference(as_read, after_ms, tier)
    assert [json.loads(line) for line in bare] == [p[1] for p in pairs]
    assert [parse_line(line)[2] for line in windowed] == bare


def test_hot_page_bounds_the_rows_by_after_ms_only_when_given_as_a_server_parameter() -> None:
    bounded = hot_page(7, "s", -1, (0, ""), 64, after_ms=1_700_000_000_123)
    assert bounded.parameters["after_ms"] == 1_700_000_000_123
    assert "1700000000123" not in bounded.sql and "{after_ms:Int64}" in bounded.sql
    text, bound = bind_query(bounded.sql, dict(bounded.parameters))
    assert text == bounded.sql and bound["param_after_ms"] == "1700000000123"
    unbounded = hot_page(7, "s", -1, (0, ""), 64)
    assert "after_ms" not in unbounded.parameters and "last_timestamp" not in unbounded.sql
