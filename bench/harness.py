"""Throughput harness: the pipeline's work ceiling, plain-consumer baselines doing the
same work into the same sink, and the replay-ingest worker end to end, on the same
generated workloads and the same kind of local broker (a fresh Tansu per measurement).

    python3.11 bench/harness.py [--messages 6000] [--workloads seed003,incremental14k,full] \
        [--workers 1,2] [--json bench/results/harness.json]

Prints one table per workload (messages/s, MB/s of compressed input, CPU per message,
RSS, ratios to the ceiling and to the best baseline) and writes the figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from config.teams import DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.generate import GenerateOptions, generate
from replay_ingest.localstack import create_topics, free_port, start_broker, wait_for_port
from replay_ingest.produce import produce_lines
from replay_ingest.run import scrape
from sinks.clickhouse import (
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TABLE,
    ClickHouseSink,
    connect,
    ensure_schema,
)
from streams.batches import decode_batch, row_values
from streams.models import SourceRef, decode_stats, encode_stats
from streams.parse import parse_capture
from streams.reassembly import Outcome, PendingChunks
from streams.windows import SessionWindows

TOPIC = "session_recording_events"
REGISTRY = TeamRegistry.of([Team(1, DEMO_TOKEN)])
MAX = 64 * 1024 * 1024
SOURCE = SourceRef(TOPIC, 0, 0)


def workload(name: str, target: int) -> tuple[list[bytes], int]:
    """(messages, batches) of a named workload, about `target` messages long."""
    base: dict[str, Any] = {"seed": 3}
    keep: Callable[[Any], bool] = lambda truth: True  # noqa: E731
    if name == "incremental14k":  # fixed-size incremental batches, like seed 003's median
        base |= {
            "incremental_size_mean": 14_000,
            "incremental_size_sd": 1,
            "incremental_count_mean": 60,
            "incremental_count_sd": 1,
        }
        keep = lambda truth: not truth.has_full_snapshot  # noqa: E731
    elif name == "full":  # full-snapshot heavy
        base |= {
            "full_count_mean": 12,
            "full_count_sd": 3,
            "incremental_count_mean": 1,
            "incremental_count_sd": 1,
        }
    messages: list[bytes] = []
    batches = 0
    sessions = 1
    while len(messages) < target:
        messages, batches = [], 0
        for batch_messages, truth in generate(GenerateOptions(sessions=sessions, **base)):
            if keep(truth):
                messages += batch_messages
                batches += 1
        sessions *= 2
    return messages, batches


class Work:
    """Exactly the worker's per-message work: parse, reassemble, decode, statistics, rows
    into the same ClickHouse sink, the statistics record encoded and counted into a
    session window."""

    def __init__(self, url: str) -> None:
        self.pending = PendingChunks({})
        self.windows = SessionWindows({}, 3_600_000, 600_000, 86_400)
        self.sink = ClickHouseSink(
            lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, max_rows=5000, max_bytes=MAX
        )
        self.batches = 0

    def process(self, raw: bytes) -> None:
        chunk = parse_capture(raw, REGISTRY, MAX)
        if chunk.chunk_count == 1:
            pieces = [chunk]
        else:
            outcome = self.pending.add(
                chunk.set_key, chunk.chunk_index, chunk.chunk_count, raw, SOURCE, 0, 0.0
            )
            if outcome is not Outcome.COMPLETE:
                return
            pieces = [
                parse_capture(p, REGISTRY, MAX) for p, _ in self.pending.pieces(chunk.set_key)
            ]
            self.pending.release(chunk.set_key, 0.0)
        row, stats = decode_batch(pieces, MAX, 7)
        self.windows.add(decode_stats(encode_stats(stats)), 0, 0.0)
        self.sink.add(row_values(row), row.size)
        self.batches += 1


@dataclass
class Figure:
    workload: str
    kind: str
    messages: int
    seconds: float
    mb: float
    cpu_seconds: float
    rss_mb: float

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self, ceiling: float, best: float | None) -> str:
        ratios = f"{self.rate / ceiling:5.2f}"
        ratios += f"  {self.rate / best:5.2f}" if best else "      -"
        return (
            f"  {self.kind:<26} {self.rate:>9,.0f} msg/s {self.mb / self.seconds:>7.1f} MB/s "
            f"{self.cpu_seconds / self.messages * 1e6:>7.0f} us CPU/msg {self.rss_mb:>6.0f} MB RSS"
            f"   {ratios}"
        )


def _process() -> psutil.Process:
    return psutil.Process(os.getpid())


def ceiling(name: str, messages: list[bytes], tmp: Path) -> Figure:
    url = f"chdb://{tmp / 'ceiling'}"
    ensure_schema(connect(url))
    work = Work(url)
    cpu, started = _process().cpu_times(), time.perf_counter()
    for index, raw in enumerate(messages):
        work.process(raw)
        if index % 500 == 499:
            asyncio.run(work.sink.flush())
    asyncio.run(work.sink.flush())
    return _figure(name, "(a) work ceiling, no Kafka", messages, started, cpu, _process())


def _figure(
    name: str, kind: str, messages: list[bytes], started: float, cpu: Any, proc: psutil.Process
) -> Figure:
    seconds = time.perf_counter() - started
    now = proc.cpu_times()
    used = (now.user + now.system) - (cpu.user + cpu.system)
    return Figure(
        name,
        kind,
        len(messages),
        seconds,
        sum(map(len, messages)) / 1e6,
        used,
        proc.memory_info().rss / 1e6,
    )


async def aiokafka_baseline(name: str, messages: list[bytes], bootstrap: str, tmp: Path) -> Figure:
    work = Work(f"chdb://{tmp / 'aiokafka'}")
    ensure_schema(connect(f"chdb://{tmp / 'aiokafka'}"))
    consumer = AIOKafkaConsumer(
        TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 << 20,
        fetch_max_bytes=64 << 20,
        max_poll_records=500,
    )
    await consumer.start()
    seen, started, cpu = 0, None, None
    try:
        while seen < len(messages):
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
                if started is None:
                    started, cpu = time.perf_counter(), _process().cpu_times()
                for record in records:
                    work.process(record.value)
                seen += len(records)
            await work.sink.flush()
    finally:
        await consumer.stop()
    assert started is not None
    return _figure(name, "(b) aiokafka getmany", messages, started, cpu, _process())


def confluent_baseline(name: str, messages: list[bytes], bootstrap: str, tmp: Path) -> Figure:
    from confluent_kafka import Consumer

    work = Work(f"chdb://{tmp / 'confluent'}")
    ensure_schema(connect(f"chdb://{tmp / 'confluent'}"))
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"bench-{time.time()}",
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "fetch.max.bytes": 64 << 20,
            "max.partition.fetch.bytes": 16 << 20,
        }
    )
    consumer.subscribe([TOPIC])
    seen, started, cpu = 0, None, None
    try:
        while seen < len(messages):
            records = consumer.consume(500, timeout=1.0)
            records = [r for r in records if r.error() is None]
            if records and started is None:
                started, cpu = time.perf_counter(), _process().cpu_times()
            for record in records:
                work.process(record.value())
            seen += len(records)
            asyncio.run(work.sink.flush())
    finally:
        consumer.close()
    assert started is not None
    return _figure(name, "(b) confluent-kafka", messages, started, cpu, _process())


ROWS = 'replay_clickhouse_rows_total{table="session_recording_events"}'


def _scrape(port: int) -> dict[str, float]:
    try:
        return scrape("127.0.0.1", port)
    except OSError:  # a busy worker may drop one scrape; the next one counts
        return {}


def worker_run(
    name: str,
    messages: list[bytes],
    batches: int,
    bootstrap: str,
    tmp: Path,
    workers: int,
    extra_env: dict[str, str],
) -> Figure:
    """Workers start on a backlog; timed from their first message to the last row."""
    procs, ports = [], []
    tmp = Path(tempfile.mkdtemp(prefix=f"x{workers}-", dir=tmp))  # fresh state: a fresh broker
    env_base = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    for index in range(workers):
        metrics_port = free_port()
        env = (
            env_base
            | {
                "REPLAY_BROKER_URL": f"kafka://{bootstrap}",
                "REPLAY_DATA_DIR": str(tmp / f"w{index}"),
                "REPLAY_APP_ID": f"bench-{int(time.time())}",
                "REPLAY_WEB_PORT": str(free_port()),
                "REPLAY_METRICS_PORT": str(metrics_port),
                "REPLAY_LOG_LEVEL": "WARNING",
                "REPLAY_CLICKHOUSE_URL": f"chdb://{tmp / 'ch' / str(index)}",
            }
            | extra_env
        )
        log = open(tmp / f"worker{index}.log", "ab")  # noqa: SIM115
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "replay_ingest", "worker"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        ports.append(metrics_port)
    try:
        for proc, port in zip(procs, ports, strict=True):
            wait_for_port("127.0.0.1", port, 60, proc)
        watched = [psutil.Process(p.pid) for p in procs]
        started = cpu0 = None
        rss = 0.0
        deadline = time.monotonic() + 1800
        while time.monotonic() < deadline:
            dead = [p.pid for p in procs if p.poll() is not None]
            assert not dead, f"worker(s) {dead} exited: see {tmp}/worker*.log"
            totals = [_scrape(port) for port in ports]
            consumed = sum(t.get("replay_messages_consumed_total", 0) for t in totals)
            if started is None and consumed > 0:
                started = time.perf_counter()
                cpu0 = sum(sum(p.cpu_times()[:2]) for p in watched)
            rss = max(rss, sum(p.memory_info().rss for p in watched) / 1e6)
            if sum(t.get(ROWS, 0) for t in totals) >= batches:
                break
            time.sleep(0.05)
        assert started is not None and cpu0 is not None, "the workers consumed nothing"
        seconds = time.perf_counter() - started
        cpu = sum(sum(p.cpu_times()[:2]) for p in watched) - cpu0
        return Figure(
            name,
            f"(c) replay-ingest x{workers}",
            len(messages),
            seconds,
            sum(map(len, messages)) / 1e6,
            cpu,
            rss,
        )
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            proc.wait(60)


def fresh_broker(messages: list[bytes], tmp: Path) -> Any:
    broker = start_broker(free_port(), tmp / f"tansu-{time.time()}.log")
    asyncio.run(create_topics(broker.bootstrap, [TOPIC], 4))
    asyncio.run(produce_lines(broker.bootstrap, TOPIC, messages, progress=False))
    return broker


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--workloads", default="seed003,incremental14k,full")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--json", default="bench/results/harness.json")
    parser.add_argument(
        "--worker-env",
        action="append",
        default=[],
        metavar="REPLAY_X=VALUE",
        help="extra settings for the measured workers (repeatable)",
    )
    args = parser.parse_args()
    results = []
    for name in args.workloads.split(","):
        messages, batches = workload(name, args.messages)
        print(
            f"\n{name}: {len(messages)} messages, {batches} batches, "
            f"{sum(map(len, messages)) / 1e6:.1f} MB compressed"
        )
        figures = []
        tmp = Path(tempfile.mkdtemp(prefix="harness-"))  # kept when a run fails: its logs
        if True:
            figures.append(ceiling(name, messages, tmp))
            for run in ("aiokafka", "confluent", *(f"w{n}" for n in args.workers.split(","))):
                broker = fresh_broker(messages, tmp)
                try:
                    bootstrap = broker.bootstrap
                    if run == "aiokafka":
                        figure = asyncio.run(aiokafka_baseline(name, messages, bootstrap, tmp))
                    elif run == "confluent":
                        figure = confluent_baseline(name, messages, bootstrap, tmp)
                    else:
                        extra = dict(e.split("=", 1) for e in args.worker_env)
                        figure = worker_run(
                            name, messages, batches, bootstrap, tmp, int(run[1:]), extra
                        )
                    figures.append(figure)
                finally:
                    broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
        top = figures[0].rate
        best = max(f.rate for f in figures if f.kind.startswith("(b)"))
        print(f"  {'':<26} {'':>15} {'':>12} {'':>17} {'':>13}   /ceil  /best(b)")
        for figure in figures:
            print(figure.line(top, best if figure.kind.startswith("(c)") else None))
        results += [asdict(f) | {"rate": f.rate} for f in figures]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
