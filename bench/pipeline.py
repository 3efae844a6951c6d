"""Throughput of the per-message pipeline work, next to the raw decode ceiling.

    python bench/pipeline.py [--sessions 60] [--seed 3]

On the same generated workload (seed-003 size distribution), in one process:

* ceiling:  envelope JSON + inner JSON + base64 decode + gunzip + JSON parse of the
            events (generic msgspec decode), nothing else;
* pipeline: parse_capture (validation, tenancy) + reassembly of multi-piece sets in
            PendingChunks + decode_batch (typed event summary) + row building;
* +sink:    the same plus ClickHouseSink inserts into a real chDB (batches of 500).

Prints messages/s and MB/s of compressed input for each, and pipeline/ceiling ratios,
then what the session statistics cost per message: decoding only (type, timestamp) of
each event versus the full statistics decode, and counting a batch into its session
window (SessionWindows.add over a dict).
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from collections.abc import Callable

import msgspec
import pybase64
from isal import isal_zlib

from config.teams import DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.generate import GenerateOptions, generate
from sinks.clickhouse import (
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TABLE,
    ClickHouseSink,
    connect,
    ensure_schema,
)
from streams.batches import decode_batch, row_values
from streams.decode import decode_payload
from streams.models import SourceRef
from streams.parse import parse_capture
from streams.reassembly import Outcome, PendingChunks
from streams.stats import summarize_events
from streams.windows import SessionWindows

REGISTRY = TeamRegistry.of([Team(1, DEMO_TOKEN)])
MAX = 64 * 1024 * 1024


def ceiling(messages: list[bytes]) -> None:
    held: dict[str, list[tuple[int, str]]] = {}
    for raw in messages:
        envelope = msgspec.json.decode(raw)
        snap = msgspec.json.decode(envelope["data"])["properties"]["snapshot_data"]
        parts = held.setdefault(snap["chunk_id"], [])
        parts.append((snap["chunk_index"], snap["data"]))
        if len(parts) == snap["chunk_count"]:
            data = "".join(d for _, d in sorted(parts))
            msgspec.json.decode(isal_zlib.decompress(pybase64.b64decode(data), 31))
            del held[snap["chunk_id"]]


def pipeline(messages: list[bytes], sink: ClickHouseSink | None) -> None:
    pending = PendingChunks({})
    source = SourceRef("session_recording_events", 0, 0)
    for raw in messages:
        chunk = parse_capture(raw, REGISTRY, MAX)
        if chunk.chunk_count == 1:
            pieces = [chunk]
        else:
            outcome = pending.add(
                chunk.set_key, chunk.chunk_index, chunk.chunk_count, raw, source, 0, 0.0
            )
            if outcome is not Outcome.COMPLETE:
                continue
            pieces = [parse_capture(p, REGISTRY, MAX) for p, _ in pending.pieces(chunk.set_key)]
            pending.release(chunk.set_key, 0.0)
        row, _ = decode_batch(pieces, MAX)
        if sink is not None:
            sink.add(row_values(row), row.size)
            if len(sink.rows) >= 500:
                asyncio.run(sink.flush())
    if sink is not None:
        asyncio.run(sink.flush())


class _Head(msgspec.Struct, gc=False):
    type: int
    timestamp: int | float


def statistics_cost(messages: list[bytes], rounds: int) -> None:
    payloads, stats = [], []
    for batch_messages, _ in generate_batches(messages):
        pieces = [parse_capture(m, REGISTRY, MAX) for m in batch_messages]
        payloads.append(decode_payload("".join(p.data for p in pieces), "gzip-base64", MAX))
        stats.append(decode_batch(pieces, MAX, 7).stats)
    heads = msgspec.json.Decoder(list[_Head])

    def timed(work: Callable[[], object]) -> float:
        best = float("inf")
        for _ in range(rounds):
            started = time.perf_counter()
            work()
            best = min(best, time.perf_counter() - started)
        return best / len(messages) * 1e6

    head = timed(lambda: [heads.decode(p) for p in payloads])
    full = timed(lambda: [summarize_events(p) for p in payloads])
    windows = timed(
        lambda: [SessionWindows({}, 3_600_000, 600_000, 86_400).add(s, 0, 0.0) for s in stats]
    )
    print(
        f"statistics per message: decode (type, timestamp) only {head:.1f} us, "
        f"full statistics decode {full:.1f} us (+{full - head:.1f} us), "
        f"session window update {windows:.1f} us"
    )


def generate_batches(messages: list[bytes]) -> list[tuple[list[bytes], None]]:
    """Group messages of a workload back into their batches (by chunk_id, in order)."""
    batches: dict[str, list[bytes]] = {}
    for raw in messages:
        chunk = parse_capture(raw, REGISTRY, MAX)
        batches.setdefault(chunk.set_key, []).append(raw)
    return [(group, None) for group in batches.values()]


def measure(name: str, work: Callable[[], None], count: int, nbytes: int, rounds: int) -> float:
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - started)
    rate = count / best
    print(f"{name:<10} {rate:>10,.0f} msg/s {nbytes / best / 1e6:>9.1f} MB/s  ({best:.2f} s)")
    return rate


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sessions", type=int, default=60)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    opts = GenerateOptions(sessions=args.sessions, seed=args.seed)
    messages = [m for batch, _ in generate(opts) for m in batch]
    nbytes = sum(map(len, messages))
    print(
        f"workload: {len(messages)} messages, {nbytes / 1e6:.1f} MB compressed input, "
        f"{args.sessions} sessions (seed {args.seed}), best of {args.rounds}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        url = f"chdb://{tmp}/db"
        ensure_schema(connect(url))
        sink = ClickHouseSink(
            lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, max_rows=500, max_bytes=MAX
        )
        top = measure("ceiling", lambda: ceiling(messages), len(messages), nbytes, args.rounds)
        bare = measure(
            "pipeline", lambda: pipeline(messages, None), len(messages), nbytes, args.rounds
        )
        full = measure(
            "+sink", lambda: pipeline(messages, sink), len(messages), nbytes, args.rounds
        )
    print(f"ratio pipeline/ceiling {bare / top:.2f}   pipeline+sink/ceiling {full / top:.2f}")
    statistics_cost(messages, args.rounds)


if __name__ == "__main__":
    main()
