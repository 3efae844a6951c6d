"""Rage clicks: the definition on examples at its edges, and exactness whatever the cut
into batches, the delivery order, duplicates and window parts, against the plain
reference (tests/reference.py)."""

from __future__ import annotations

import random
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sinks.clickhouse.summary import ClickSpan
from streams.clicks import merge_spans, rage_clicks, span_of
from streams.figures import merge_figures
from streams.models import BatchStats
from streams.stats import summarize_events
from streams.windows import SessionWindows
from tests import reference

T0 = 1_793_000_000_000


def click(ts: int, x: float, y: float, kind: int = 2) -> dict[str, Any]:
    return {"type": 3, "timestamp": T0 + ts, "data": {"source": 2, "type": kind, "x": x, "y": y}}


def batch(events: list[dict[str, Any]], window: str = "w") -> dict[str, Any]:
    return {"truth": {"window_id": window}, "events": events}


def counted(*batches: dict[str, Any]) -> int:
    """Rage clicks as the pipeline counts them: one span per batch, then joined."""
    spans = []
    for b in batches:
        figures = summarize_events(msgspec.json.encode(b["events"]), b["truth"]["window_id"])
        spans += figures.click_spans
    return rage_clicks(spans)


@pytest.mark.parametrize(
    ("clicks", "expected"),
    [
        ([(0, 0, 0), (1000, 0, 30), (2000, 18, 54)], 1),  # exactly 1000 ms and 30 px
        ([(0, 0, 0), (1001, 0, 0), (2002, 0, 0)], 0),  # 1001 ms
        ([(0, 0, 0), (10, 30.01, 0), (20, 60.02, 0)], 0),  # 30.01 px
        ([(0, 0, 0), (10, 0, 0)], 0),  # two are not enough
        ([(t * 100, 0, 0) for t in range(6)], 1),  # a run of six counts once
        ([(0, 0, 0), (1, 0, 0), (2, 0, 0), (2000, 0, 0), (2001, 0, 0), (2002, 0, 0)], 2),
        ([(0, 0, 0), (0, 500, 500), (0, 0, 0), (0, 500, 500)], 0),  # equal times: order kept
    ],
)
def test_the_definition_at_its_edges(clicks: list[tuple[int, float, float]], expected: int) -> None:
    events = [click(*c) for c in clicks]
    assert counted(batch(events)) == expected
    assert reference.rage_clicks([batch(events)]) == expected


def test_other_mouse_interactions_and_clicks_without_position_are_not_in_the_sequence() -> None:
    events = [
        click(0, 0, 0),
        click(100, 0, 0, kind=4),  # a double click: not a click here, does not break the run
        {"type": 3, "timestamp": T0 + 150, "data": {"source": 2, "type": 2}},  # no position
        click(200, 5, 5),
        click(300, 9, 9),
    ]
    assert counted(batch(events)) == reference.rage_clicks([batch(events)]) == 1


def test_a_run_across_batches_counts_once_and_windows_never_join() -> None:
    run = [click(t * 200, t, t) for t in range(6)]
    assert counted(batch(run[:2]), batch(run[2:4]), batch(run[4:])) == 1
    assert counted(batch(run[4:]), batch(run[:2]), batch(run[2:4])) == 1  # any order
    assert counted(batch(run[:2], "w1"), batch(run[2:4], "w2"), batch(run[4:], "w3")) == 0
    # a window's run goes on across another window's clicks in between
    assert counted(batch(run[:2], "w1"), batch(run[2:4], "w2"), batch(run[4:], "w1")) == 1


def test_spans_beyond_the_cap_join_their_neighbours_and_stay_exact() -> None:
    rng = random.Random(3)
    clicks = [(i * 300, rng.randint(0, 40), 0) for i in range(120)]
    spans = [span_of("w", [(T0 + t, float(x), float(y))]) for t, x, y in clicks]
    assert all(isinstance(s, ClickSpan) for s in spans)
    capped: list[ClickSpan] = []
    for s in spans:
        assert s is not None
        capped = merge_spans(capped, [s], cap=10)
    assert len(capped) <= 10
    assert rage_clicks(capped) == reference.rage_clicks([batch([click(*c) for c in clicks])])


# --- any cut into batches, any delivery, duplicates, window parts: exact ---


@st.composite
def recordings(draw: st.DrawFn) -> list[dict[str, Any]]:
    """Batches of one session in recording order: each browser window's clicks cut into
    consecutive batches (batches of a window never overlap in time, as in rrweb)."""
    batches = []
    for window in ("w1", "w2")[: draw(st.integers(1, 2))]:
        ts, x, y, events = 0, 0, 0, []
        for _ in range(draw(st.integers(1, 40))):
            ts += draw(st.sampled_from([0, 100, 400, 999, 1000, 1001, 3000, 90_000]))
            x += draw(st.sampled_from([0, 3, -12, 29, 31, 200]))
            y += draw(st.sampled_from([0, 5, -20]))
            events.append(click(ts, x, y))
        # a cut between two clicks of one instant would make batches overlap in time
        apart = [
            i for i in range(1, len(events)) if events[i]["timestamp"] > events[i - 1]["timestamp"]
        ]
        chosen = draw(st.sets(st.sampled_from(apart), max_size=6)) if apart else set()
        cuts = sorted(chosen | {len(events)})
        start = 0
        for cut in cuts:
            batches.append(batch(events[start:cut], window))
            start = cut
    return batches


@settings(max_examples=300, deadline=None)
@given(recordings(), st.randoms(use_true_random=False), st.sampled_from([500, 5_000, 60_000]))
def test_rage_clicks_are_exact_whatever_the_delivery(
    batches: list[dict[str, Any]], rng: random.Random, window_ms: int
) -> None:
    stats = []
    for index, b in enumerate(batches):
        payload = msgspec.json.encode(b["events"])
        figures = summarize_events(payload, b["truth"]["window_id"])
        stats.append(BatchStats(1, "s", f"c{index}", figures))
    delivery = stats + [rng.choice(stats) for _ in range(len(stats) // 2)]
    rng.shuffle(delivery)
    windows = SessionWindows({}, size_ms=window_ms, expiry_ms=0, dedup_seconds=10**9)
    parts = {}
    for index, one in enumerate(delivery):
        windows.add(one, 0, float(index))
        if rng.random() < 0.3:  # parts close and late batches open new ones
            for row in windows.due(0, float(index) + 10**6):
                parts[(row.window_start, row.part.part_id)] = row.part.aggregate
            windows.flushed(windows.due(0, float(index) + 10**6), float(index) + 10**6)
    for row in windows.due(0, 10**9):
        parts[(row.window_start, row.part.part_id)] = row.part.aggregate
    merged = list(parts.values())
    rng.shuffle(merged)
    total = merged[0]
    for part in merged[1:]:
        total = merge_figures(total, part)
    assert rage_clicks(total.click_spans) == reference.rage_clicks(batches)


@pytest.mark.parametrize(
    "position",
    [{"x": "10", "y": 0}, {"x": None, "y": 0}, {"x": [1], "y": {}}, {"x": 1e300, "y": 0}, {"y": 0}],
    ids=["string", "null", "containers", "far-away", "missing"],
)
def test_a_click_without_a_usable_position_is_left_out_and_the_run_goes_on(
    position: dict[str, Any],
) -> None:
    """Positions come from the browser: anything but two numbers a screen can have leaves
    that click out of the sequence (it neither crashes the stage nor breaks a run)."""
    odd = {"type": 3, "timestamp": T0 + 150, "data": {"source": 2, "type": 2, **position}}
    events = [click(0, 0, 0), click(100, 3, 3), odd, click(200, 6, 6)]
    figures = summarize_events(msgspec.json.encode(events), "w")
    assert figures.click_count == 4  # still a click for click_count
    assert rage_clicks(figures.click_spans) == 1 == reference.rage_clicks([batch(events)])
