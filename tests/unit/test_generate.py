"""The generator: deterministic, realistic shape, and ground truth that matches decoding."""

from __future__ import annotations

import statistics

import msgspec

from config.teams import DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from sinks.clickhouse import SNAPSHOT_COLUMNS
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
