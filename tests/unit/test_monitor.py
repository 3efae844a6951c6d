"""The consumption monitor's pure parts: lag and the skipped-records watch."""

from __future__ import annotations

from streams.monitor import SkipWatch, partition_lag


def test_lag_is_high_watermark_minus_committed() -> None:
    assert partition_lag(None, 5) == 0  # no fetch answered yet
    assert partition_lag(40, None) == 40
    assert partition_lag(40, 12) == 28
    assert partition_lag(10, 12) == 0


def test_a_hole_below_acknowledged_offsets_is_due_only_once_it_stays() -> None:
    watch = SkipWatch(grace_seconds=15)
    acked = {"p0": [18, 19, 20], "p1": [13, 14], "p2": [], "p3": [30]}
    committed = {"p0": 12, "p1": 12, "p2": 12, "p3": None}
    assert watch.due(acked, committed, now=0) == []  # p0 has a hole: watched from now
    assert watch.due(acked, committed, now=14) == []
    assert watch.due(acked, committed, now=15) == [("p0", 12)]  # p1 commits, p3 never did
    assert watch.due(acked, committed, now=16) == []  # rewound: watched afresh


def test_a_hole_that_moves_or_closes_is_not_due() -> None:
    watch = SkipWatch(grace_seconds=15)
    assert watch.due({"p0": [18]}, {"p0": 12}, now=0) == []
    assert watch.due({"p0": [25]}, {"p0": 20}, now=10) == []  # committed moved on
    assert watch.due({"p0": [25]}, {"p0": 20}, now=24) == []
    assert watch.due({"p0": [21]}, {"p0": 20}, now=40) == []  # the hole was filled
    assert watch.due({"p0": [27]}, {"p0": 20}, now=41) == []
    assert watch.due({"p0": [27]}, {"p0": 20}, now=56) == [("p0", 20)]
