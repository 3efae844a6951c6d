"""The generator: deterministic, realistic shape, and ground truth that matches decoding."""

from __future__ import annotations

import itertools
import math
import statistics

import msgspec

from config.teams import DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS
from streams.batches import decode_batch
from streams.parse import parse_capture

COMPARED = [c for c in SNAPSHOT_COLUMNS if c != "snapshot_data"]
REGISTRY = TeamRegistry.of([Team(1, DEMO_TOKEN)])


def test_same_seed_same_bytes_other_seed_other_bytes() -> None:
    first = list(generate(GenerateOptions(sessions=3, seed=5, incremental_count_mean=5)))
    again = list(generate(GenerateOptions(sessions=3, seed=5, incremental_count_mean=5)))
    other = list(generate(GenerateOptions(sessions=3, seed=6, incremental_count_mean=5)))
    assert first == again
    assert first != other


def test_truth_matches_what_the_pipeline_decodes() -> None:
    opts = GenerateOptions(
        sessions=8, seed=2, chunk_size=50_000, large_full_snapshots=1, incremental_count_mean=10
    )
    windows_per_session: dict[str, set[str]] = {}
    kinds = set()
    for messages, truth in generate(opts):
        row = decode_batch([parse_capture(m, REGISTRY, 10**8) for m in messages], 10**9).row
        assert {c: getattr(row, c) for c in COMPARED} == {c: getattr(truth, c) for c in COMPARED}
        windows_per_session.setdefault(truth.session_id, set()).add(truth.window_id)
        for event in msgspec.json.decode(row.snapshot_data):
            kinds.add((event["type"], event["data"].get("source"), event["data"].get("plugin")))
    assert len(windows_per_session) == 8
    assert max(map(len, windows_per_session.values())) > 1, "several windows per session"
    assert {(4, None, None), (2, None, None), (6, None, "rrweb/console@1")} <= kinds
    assert {(3, source, None) for source in (0, 1, 2, 3, 5)} <= kinds


def test_sizes_follow_the_production_distribution() -> None:
    incremental, full = [], []
    for messages, truth in generate(GenerateOptions(sessions=40, seed=3)):
        (full if truth.has_full_snapshot else incremental).append(sum(map(len, messages)))
    # log-normal around 14 KB (incremental) and 185 KB (full) per compressed batch
    assert 8_000 < statistics.mean(incremental) < 25_000
    assert statistics.median(incremental) < statistics.mean(incremental)
    assert 100_000 < statistics.mean(full) < 330_000


RAGE_GAP_MS, RAGE_DISTANCE_PX, RAGE_CLICKS = 1000, 30, 3
Click = tuple[int, int, dict]  # (batch index in the session, event index in the session, event)


def is_click(event: dict) -> bool:
    data = event["data"]
    return event["type"] == 3 and data.get("source") == 2 and data.get("type") == 2


def gap_and_distance(before: dict, after: dict) -> tuple[int, float]:
    dx = after["data"]["x"] - before["data"]["x"]
    dy = after["data"]["y"] - before["data"]["y"]
    return after["timestamp"] - before["timestamp"], math.hypot(dx, dy)


def click_runs(batches: list[list[dict]]) -> list[list[Click]]:
    """Maximal runs of consecutive clicks, each within 1000 ms and 30 px of the previous."""
    runs: list[list[Click]] = []
    index = 0
    for number, events in enumerate(batches):
        for event in events:
            if is_click(event):
                gap, distance = gap_and_distance(runs[-1][-1][2], event) if runs else (0, 0.0)
                if runs and gap <= RAGE_GAP_MS and distance <= RAGE_DISTANCE_PX:
                    runs[-1].append((number, index, event))
                else:
                    runs.append([(number, index, event)])
            index += 1
    return runs


def sessions_of(opts: GenerateOptions) -> dict[str, list[tuple[str, list[dict]]]]:
    """Per session, its batches in the order generated: (window_id, events)."""
    found: dict[str, list[tuple[str, list[dict]]]] = {}
    for messages, truth in generate(opts):
        row = decode_batch([parse_capture(m, REGISTRY, 10**8) for m in messages], 10**9).row
        events = msgspec.json.decode(row.snapshot_data)
        found.setdefault(truth.session_id, []).append((truth.window_id, events))
    return found


def test_rage_click_runs_form_hold_to_their_window_and_straddle_batch_cuts() -> None:
    opts = GenerateOptions(
        sessions=12, seed=7, incremental_count_mean=15, incremental_size_mean=1_000
    )
    rage: list[list[Click]] = []
    straddling = 0
    for batches in sessions_of(opts).values():
        events = [event for _, batch in batches for event in batch]
        timestamps = [event["timestamp"] for event in events]
        assert timestamps == sorted(timestamps)
        for event in filter(is_click, events):
            assert type(event["data"]["x"]) is int and type(event["data"]["y"]) is int
        for run in click_runs([batch for _, batch in batches]):
            if len(run) < RAGE_CLICKS:
                continue
            rage.append(run)
            numbers = [number for number, _, _ in run]
            straddling += numbers[0] != numbers[-1]
            assert len({batches[number][0] for number in numbers}) == 1, "one window per run"
            indexes = [index for _, index, _ in run]
            assert indexes == list(range(indexes[0], indexes[0] + len(run))), "nothing between"
            assert len({event["data"]["id"] for _, _, event in run}) == 1, "one element"
    assert len(rage) >= 5 and max(map(len, rage)) >= 5
    assert straddling >= 4, "runs across batch cuts"


def test_bursts_try_both_edges_of_a_rage_click() -> None:
    opts = GenerateOptions(sessions=12, seed=7, incremental_count_mean=15)
    pairs = []
    for batches in sessions_of(opts).values():
        events = [event for _, batch in batches for event in batch]
        for before, after in itertools.pairwise(events):
            if is_click(before) and is_click(after) and before["data"]["id"] == after["data"]["id"]:
                pairs.append(gap_and_distance(before, after))
    gaps = [gap for gap, _ in pairs]
    distances = [distance for _, distance in pairs]
    assert min(gaps) >= 0
    assert any(900 <= gap <= RAGE_GAP_MS for gap in gaps)
    assert any(RAGE_GAP_MS < gap <= 1300 for gap in gaps)
    assert any(24 < distance <= RAGE_DISTANCE_PX for distance in distances)
    assert any(RAGE_DISTANCE_PX < distance <= 41 for distance in distances)
