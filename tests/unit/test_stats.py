"""Session statistics: per-batch definitions and window parts under any delivery order,
against the plain reference (tests/e2e/test_summary_view.py checks the SQL view)."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.figures import merge_figures
from streams.models import BatchStats, decode_stats, encode_stats
from streams.output import Message
from streams.stages import SummarizeStage
from streams.stats import active_milliseconds, summarize_events
from streams.windows import SessionWindows
from tests import builders, reference

T0 = 1_793_000_000_000


def ev(kind: int, ts: int, **data: Any) -> dict[str, Any]:
    return {"type": kind, "timestamp": ts, "data": data}


def summary(events: list[dict[str, Any]]):
    return summarize_events(msgspec.json.encode(events))


def test_counts_follow_the_definitions() -> None:
    events = [
        ev(4, T0 + 5, href="https://b.example/"),
        ev(4, T0 + 1, payload={"href": "https://a.example/"}),
        ev(2, T0 + 2, node={}),
        *[ev(3, T0 + 10 + t, source=2, type=t) for t in range(10)],
        ev(3, T0 + 30, source=5, text="x"),
        ev(3, T0 + 31, source=1, positions=[]),
        ev(3, T0 + 32, source=6),
        ev(3, T0 + 33, source=0, adds=[]),
        *[
            ev(6, T0 + 40, plugin="rrweb/console@1", payload={"level": lvl})
            for lvl in (
                *("log", "info", "debug", "warn", "error", "error", "trace", "assert"),
                *("table", "count", "countReset", "group", "groupEnd", "dir", "time", "timeEnd"),
            )
        ],
        ev(6, T0 + 41, plugin="other", payload={"level": "error"}),
    ]
    s = summary(events)
    assert (s.click_count, s.keypress_count, s.mouse_activity_count) == (4, 1, 12)
    # warn + countReset; error x2 + assert; the 11 other levels are logs
    assert (s.console_log_count, s.console_warn_count, s.console_error_count) == (11, 2, 3)
    assert (s.first_url, s.first_url_timestamp) == ("https://a.example/", T0 + 1)
    assert s.all_urls == ["https://b.example/", "https://a.example/"]
    assert s.has_full_snapshot and s.event_count == len(events)
    assert active_milliseconds(s.active_segments) == 32 - 10


@pytest.mark.parametrize(
    ("stamps", "expected"),
    [([0], 1), ([0, 0], 1), ([0, 5000], 5000), ([0, 5001], 2), ([0, 3000, 7000, 20000], 7001)],
)
def test_active_milliseconds(stamps: list[int], expected: int) -> None:
    events = [ev(3, T0 + ts, source=1) for ts in stamps]
    assert active_milliseconds(summary(events).active_segments) == expected
    assert reference.active_ms([T0 + ts for ts in stamps]) == expected


def test_odd_field_types_do_not_crash() -> None:
    events = [
        ev(3, T0, source=[1], type={"a": 1}),
        ev(3, T0, source="2"),
        ev(6, T0, plugin="rrweb/console@1", payload=["not", "an", "object"]),
        ev(6, T0, plugin="rrweb/console@1", payload={"level": ["log"]}),
        ev(4, T0, href=7, payload="x"),
        {"type": 5, "timestamp": T0, "data": None},
    ]
    s = summary(events)
    assert (s.click_count, s.console_log_count, s.first_url, s.active_segments) == (0, 0, "", [])


# --- window parts: any order, duplicates, ticks anywhere -> the exact session figures ---

active_event = st.builds(
    lambda dt, src: ev(3, T0 + dt, source=src),
    st.integers(0, 40_000),
    st.sampled_from([0, 1, 2, 5, 6, 12, 13]),
)
other_event = st.one_of(
    st.builds(lambda dt: ev(4, T0 + dt, href=f"https://x/{dt % 3}"), st.integers(0, 40_000)),
    st.builds(lambda dt: ev(2, T0 + dt, node={}), st.integers(0, 40_000)),
    st.builds(
        lambda dt, lvl: ev(6, T0 + dt, plugin="rrweb/console@1", payload={"level": lvl}),
        st.integers(0, 40_000),
        st.sampled_from(["log", "warn", "error", "assert", "countReset", "table"]),
    ),
)
batch = st.lists(st.one_of(active_event, other_event), min_size=1, max_size=8)


def stats_of(
    session: str, index: int, events: list[dict[str, Any]], window: str = ""
) -> BatchStats:
    figures = {"distinct_id": "d", "size": len(msgspec.json.encode(events))}
    return builders.batch_stats(
        events,
        window or f"w{index % 2}",
        figures,
        session_id=session,
        chunk_id=f"{session}-c{index}",
    )


@settings(max_examples=200, deadline=None)
@given(
    st.lists(batch, min_size=1, max_size=12),
    st.randoms(use_true_random=False),
    st.integers(1_000, 20_000),
)
def test_parts_merge_to_the_exact_session_whatever_the_delivery(batches, rng, window_ms) -> None:
    stats = [stats_of("s", i, events) for i, events in enumerate(batches)]
    delivery = stats + [rng.choice(stats) for _ in range(len(stats) // 2)]
    rng.shuffle(delivery)
    windows = SessionWindows({}, size_ms=window_ms, expiry_ms=0, dedup_seconds=10**9)
    written: dict[tuple, tuple[int, Any]] = {}  # a ReplacingMergeTree(version) in miniature

    def tick(now: float) -> None:
        rows = windows.due(0, now)
        for row in rows:
            key = (row.window_start, row.part.part_id)
            if row.part.version >= written.get(key, (0, None))[0]:
                written[key] = (row.part.version, row.part.aggregate)
        windows.flushed(rows, now)

    now, index = 0, 0
    while index < len(delivery):  # as summarize receives them: a few batches per record
        size = rng.randint(1, 4)
        windows.add_many(delivery[index : index + size], 0, float(now))
        index, now = index + size, now + 1
        if rng.random() < 0.4:
            tick(float(now) + rng.choice([0.0, 10**6]))  # sometimes every window is over
    tick(10**7)
    assert windows.due(0, 10**8) == []
    parts = [aggregate for _, aggregate in written.values()]
    merged = parts[0]
    for part in parts[1:]:
        merged = merge_figures(merged, part)
    expected = reference.session_summary(
        [
            {
                "truth": {
                    "first_timestamp": s.figures.min_first_timestamp,
                    "distinct_id": "d",
                    "size": s.figures.size,
                    "chunk_count": 1,
                    "window_id": s.window_id,
                },
                "events": events,
            }
            for s, events in zip(stats, batches, strict=True)
        ]
    )
    assert merged.event_count == expected["event_count"]
    assert merged.size == expected["size"]
    assert active_milliseconds(merged.active_segments) == expected["active_milliseconds"]
    assert merged.mouse_activity_count == expected["mouse_activity_count"]
    assert merged.console_error_count == expected["console_error_count"]
    assert sorted(merged.all_urls) == expected["all_urls"]
    assert merged.first_url == expected["first_url"]
    assert merged.has_full_snapshot == expected["has_full_snapshot"]


def test_late_batch_opens_a_new_part_and_replays_stay_duplicates() -> None:
    windows = SessionWindows({}, size_ms=1000, expiry_ms=1000, dedup_seconds=100)
    first = stats_of("s", 0, [ev(3, T0 + 10, source=1)])
    late = stats_of("s", 1, [ev(3, T0 + 20, source=1)])
    assert windows.add(first, 0, 0.0)
    windows.add(stats_of("s", 2, [ev(3, T0 + 5000, source=1)]), 0, 0.0)  # moves the watermark
    rows = windows.due(0, 0.0)
    assert {r.part.part_id: r.close for r in rows} == {"s-c0": True, "s-c2": False}
    windows.flushed(rows, 0.0)
    assert windows.add(late, 0, 1.0)
    assert not windows.add(first, 0, 1.0) and not windows.add(late, 0, 1.0)
    due = {(r.part.part_id, r.part.version, r.close) for r in windows.due(0, 1.0)}
    assert due == {("s-c1", 1, True), ("s-c2", 1, True)}  # c1: window over; c2: idle
    windows.flushed(windows.due(0, 10**3), 10**3)
    assert windows.forget(0, 10**3 + 100) == 2


def test_statistics_records_stay_under_their_cap_and_read_back_in_order() -> None:
    stats = [stats_of(f"s{i % 3}", i, [ev(3, T0 + i, source=2, type=2)]) for i in range(50)]
    one = len(msgspec.msgpack.encode(stats[0]))
    records = encode_stats(stats, max_bytes=10 * one)
    assert len(records) >= 5
    assert all(len(record) <= 10 * one + 8 for record in records)  # + the array header
    assert [s for record in records for s in decode_stats(record)] == stats
    assert len(encode_stats(stats[:2], max_bytes=1)) == 2  # one too big still goes, alone


def test_a_team_over_its_window_cap_is_refused_and_other_teams_go_on() -> None:
    windows = SessionWindows(
        {}, size_ms=1000, expiry_ms=1000, dedup_seconds=100, max_windows_per_team=2
    )
    batches = [stats_of(f"s{i}", i, [ev(3, T0 + 10, source=1)]) for i in range(3)]
    other = msgspec.structs.replace(stats_of("s9", 9, [ev(3, T0 + 10, source=1)]), team_id=2)
    tallies = windows.add_many([*batches, other], 0, 0.0)
    assert [t.value for t in tallies] == ["counted", "counted", "team_cap", "counted"]
    stage = SummarizeStage(windows)
    record = encode_stats([stats_of("s7", 7, [ev(3, T0 + 20, source=1)])], 1 << 20)[0]
    out = stage.handle(Message("stats", 0, 5, None, record), 0.0)
    (letter,) = out.letters
    assert letter.rejection.reason == "too_many_open_windows"
    assert decode_stats(letter.original.value or b"")[0].session_id == "s7"
    assert {row.session_id for row in windows.due(0, 10**6)} == {"s0", "s1", "s9"}


def test_a_window_whose_every_part_is_full_refuses_further_batches(monkeypatch: Any) -> None:
    monkeypatch.setattr("streams.parts.MAX_BATCHES_PER_PART", 1)
    monkeypatch.setattr("streams.parts.MAX_PARTS_PER_WINDOW", 2)
    windows = SessionWindows({}, size_ms=1000, expiry_ms=1000, dedup_seconds=100)
    batches = [stats_of("s", i, [ev(3, T0 + 10 + i, source=1)]) for i in range(3)]
    assert [t.value for t in windows.add_many(batches, 0, 0.0)] == ["counted", "counted", "full"]
