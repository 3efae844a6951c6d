"""Throughput of the per-message pipeline work, next to the raw decode ceiling.

    python3.11 -m bench.pipeline [--sessions 60] [--seed 3] [--rounds 3]

On the same generated workload (seed-003 size distribution), in one process:

* ceiling:  envelope JSON + inner JSON + base64 decode + gunzip + JSON parse of the
            events (generic msgspec decode), nothing else: the baseline;
* pipeline: the worker's stages, IngestStage then ReassembleStage for the pieces of
            multi-piece sets (validation, tenancy, reassembly in PendingChunks over a
            dict, typed decode, time bounds, rows), chained by bench/chain.py;
* +sink:    the same plus the rows into ClickHouseSink, written to a real chDB every
            500 rows (then the sets are released, as the worker does once durable).

Prints messages/s and MB/s of compressed input for each, and pipeline/ceiling ratios,
then what the session statistics cost per message: decoding only (type, timestamp) of
each event versus the full statistics decode, and counting the statistics into session
windows through SummarizeStage (records as the loop sends them, windows over a dict).
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

from bench.chain import StageChain, default_settings, session_windows
from bench.workloads import MAX, REGISTRY, session_messages
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect, ensure_schema
from sinks.clickhouse.sink import ClickHouseSink
from streams.batches import decode_batch
from streams.decode import decode_payload
from streams.loop import STATS_RECORD_BYTES
from streams.models import encode_stats
from streams.output import Message
from streams.parse import parse_capture
from streams.stages import SummarizeStage
from streams.stats import summarize_events
from streams.topics import SUMMARIZE, repartition_topic


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
    chain = StageChain(sink, summarize=False)
    for raw in messages:
        chain.process(raw)
        if chain.rows >= 500:
            asyncio.run(chain.flush())
    asyncio.run(chain.flush())


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
    records = encode_stats(stats, STATS_RECORD_BYTES)
    windows = timed(lambda: summarize(records))
    print(
        f"statistics per message: decode (type, timestamp) only {head:.1f} us, "
        f"full statistics decode {full:.1f} us (+{full - head:.1f} us), "
        f"session window update (SummarizeStage) {windows:.1f} us"
    )


def summarize(records: list[bytes]) -> None:
    """Statistics records into fresh session windows, through the worker's stage."""
    stage = SummarizeStage(session_windows(default_settings()))
    now = time.time()
    for offset, record in enumerate(records):
        stage.handle(Message(repartition_topic("bench", SUMMARIZE), 0, offset, None, record), now)


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
    messages = session_messages(args.sessions, args.seed)
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
