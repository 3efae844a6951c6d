"""Throughput harness: the pipeline's work ceiling, plain-consumer baselines doing the
same work into the same sink, and the replay-ingest worker end to end, on the same
generated workloads and the same kind of local broker (a fresh Tansu per measurement).

    python3.11 -m bench.harness [--messages 6000] [--workloads seed003,incremental14k,full] \
        [--workers 1,2] [--items-workers 1] [--latency-rate 100] [--latency-seconds 20] \
        [--json bench/results/harness.json]

Prints one table per workload (messages/s, MB/s of compressed input, CPU per message,
RSS, ratios to the ceiling and to the best baseline, and for the workers the
produce-to-ClickHouse latency of a paced phase after the backlog) and writes the
figures as JSON. Rows `(d)` are the worker on the same workload as `$snapshot_items`
messages (topic session_recording_snapshot_item_events, one message per batch, values
plain/gzip/lz4, some events cv-compressed; bench.workloads.items_workload), beside
the chunked input's `(c)`; backlog only, no latency phase.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from bench.chain import StageChain
from bench.workloads import MAX, items_workload, renamed_sets, workload
from replay_ingest.generator.items import ItemsRecord
from replay_ingest.localstack import Broker, create_topics, free_port, start_broker
from replay_ingest.produce import MAX_REQUEST_BYTES, produce_lines
from replay_ingest.worker_process import Metrics, WorkerProcess
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect, ensure_schema
from sinks.clickhouse.sink import ClickHouseSink
from streams.topics import CAPTURE_TOPIC as TOPIC
from streams.topics import ITEMS_TOPIC


def work(url: str) -> StageChain:
    """Exactly the worker's per-message work: its stages (ingest, reassemble, summarize)
    over dict stores, rows into the same ClickHouse sink (bench/chain.py)."""
    sink = ClickHouseSink(
        lambda: connect(url), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, max_rows=5000, max_bytes=MAX
    )
    return StageChain(sink, summarize=True)


@dataclass
class Figure:
    workload: str
    kind: str
    messages: int
    seconds: float
    mb: float
    cpu_seconds: float
    rss_mb: float
    latency_p50_ms: float | None = None
    latency_p99_ms: float | None = None

    @property
    def rate(self) -> float:
        return self.messages / self.seconds

    def line(self, ceiling: float, best: float | None) -> str:
        ratios = f"{self.rate / ceiling:5.2f}"
        ratios += f"  {self.rate / best:5.2f}" if best else "      -"
        return (
            f"  {self.kind:<26} {self.rate:>9,.0f} msg/s {self.mb / self.seconds:>7.1f} MB/s "
            f"{self.cpu_seconds / self.messages * 1e6:>7.0f} us CPU/msg {self.rss_mb:>6.0f} MB RSS"
            f"   {ratios}  {self._latency():>11}"
        )

    def _latency(self) -> str:
        if self.latency_p50_ms is None or self.latency_p99_ms is None:
            return "-"
        return f"{self.latency_p50_ms:.0f}/{self.latency_p99_ms:.0f}"


def _process() -> psutil.Process:
    return psutil.Process(os.getpid())


def ceiling(name: str, messages: list[bytes], tmp: Path) -> Figure:
    url = f"chdb://{tmp / 'ceiling'}"
    ensure_schema(connect(url))
    warm = work(url)  # first imports, first insert: not part of a steady-state ceiling
    for raw in messages[:200]:
        warm.process(raw)
    asyncio.run(warm.flush())
    chain = work(url)
    cpu, started = _process().cpu_times(), time.perf_counter()
    for index, raw in enumerate(messages):
        chain.process(raw)
        if index % 500 == 499:
            asyncio.run(chain.flush())
    asyncio.run(chain.flush())
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
    chain = work(f"chdb://{tmp / 'aiokafka'}")
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
            fetched = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in fetched.values():
                if started is None:
                    started, cpu = time.perf_counter(), _process().cpu_times()
                for record in records:
                    chain.process(record.value)
                seen += len(records)
            await chain.flush()
    finally:
        await consumer.stop()
    assert started is not None
    return _figure(name, "(b) aiokafka getmany", messages, started, cpu, _process())


def confluent_baseline(name: str, messages: list[bytes], bootstrap: str, tmp: Path) -> Figure:
    from confluent_kafka import Consumer

    chain = work(f"chdb://{tmp / 'confluent'}")
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
                if (value := record.value()) is not None:
                    chain.process(value)
            seen += len(records)
            asyncio.run(chain.flush())
    finally:
        consumer.close()
    assert started is not None
    return _figure(name, "(b) confluent-kafka", messages, started, cpu, _process())


ROWS = ("replay_clickhouse_rows_total", {"table": SNAPSHOT_TABLE})
CONSUMED = "replay_messages_consumed_total"


def metrics(worker: WorkerProcess) -> Metrics:
    """The worker's metrics; none when a busy worker drops a scrape (the next one counts)."""
    try:
        return worker.metrics()
    except OSError:
        return Metrics()


def rows(metrics: Metrics) -> float:
    """Snapshot rows the worker has written to ClickHouse."""
    name, labels = ROWS
    return metrics.total(name, **labels)


def start_worker(
    bootstrap: str, state: Path, app_id: str, extra_env: dict[str, str]
) -> WorkerProcess:
    """A worker with its own data and chDB directories (and log) under `state`; returns
    once it serves metrics and its web API."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")} | {
        "REPLAY_ADMIN_KEY": secrets.token_urlsafe(24),  # for /api/sql
        "REPLAY_BROKER_URL": f"kafka://{bootstrap}",
        "REPLAY_DATA_DIR": str(state / "data"),
        "REPLAY_APP_ID": app_id,
        "REPLAY_WEB_PORT": str(free_port()),
        "REPLAY_METRICS_PORT": str(free_port()),
        "REPLAY_LOG_LEVEL": "WARNING",
        "REPLAY_CLICKHOUSE_URL": f"chdb://{state / 'ch'}",
    }
    return WorkerProcess(env | extra_env, state / "worker.log").start()


def stop_workers(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop(timeout=60)


def _check_alive(workers: list[WorkerProcess], logs: Path) -> None:
    dead = [w.proc.pid for w in workers if w.proc is not None and not w.running()]
    assert not dead, f"worker(s) {dead} exited: see {logs}/w*/worker.log"


def consumed_input(metrics: Metrics) -> float | None:
    """Messages taken from the capture topic (the family also counts the internal topics
    the worker feeds itself); None when the scrape failed."""
    return metrics.total(CONSUMED, topic=TOPIC) if metrics else None


def _rows(workers: list[WorkerProcess]) -> float:
    return sum(rows(metrics(w)) for w in workers)


@dataclass
class Pacing:
    """The latency phase: `rate` messages/s for `seconds` (0: no phase)."""

    rate: float
    seconds: float


def worker_run(
    name: str,
    messages: list[bytes],
    batches: int,
    bootstrap: str,
    tmp: Path,
    count: int,
    extra_env: dict[str, str],
    pacing: Pacing,
) -> Figure:
    """Workers start on a backlog, timed from their first message to the last row; then
    the same workers (same settings) take a paced phase for latency."""
    tmp = Path(tempfile.mkdtemp(prefix=f"x{count}-", dir=tmp))  # fresh state: a fresh broker
    app_id = f"bench-{int(time.time())}"  # one group for all of them
    workers: list[WorkerProcess] = []
    try:
        for index in range(count):
            workers.append(start_worker(bootstrap, tmp / f"w{index}", app_id, extra_env))
        figure = _drain(name, messages, batches, workers, tmp)
        if pacing.seconds > 0 and pacing.rate > 0:
            figure.latency_p50_ms, figure.latency_p99_ms = measure_latency(
                messages, bootstrap, workers, pacing, tmp
            )
        return figure
    finally:
        stop_workers(workers)


def _drain(
    name: str, messages: list[bytes], batches: int, workers: list[WorkerProcess], tmp: Path
) -> Figure:
    """Throughput of the workers on the backlog: first consumed message to last row."""
    watched = [psutil.Process(w.proc.pid) for w in workers if w.proc is not None]
    started = cpu0 = None
    rss = 0.0
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        _check_alive(workers, tmp)
        totals = [metrics(w) for w in workers]
        consumed = sum(t.total(CONSUMED) for t in totals)
        if started is None and consumed > 0:
            started = time.perf_counter()
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in watched)
        rss = max(rss, sum(p.memory_info().rss for p in watched) / 1e6)
        if sum(map(rows, totals)) >= batches:
            break
        time.sleep(0.2)  # a scrape costs the worker CPU: not too often
    assert started is not None and cpu0 is not None, "the workers consumed nothing"
    seconds = time.perf_counter() - started
    cpu = sum(sum(p.cpu_times()[:2]) for p in watched) - cpu0
    mb = sum(map(len, messages)) / 1e6
    kind = f"(c) replay-ingest x{len(workers)}"
    return Figure(name, kind, len(messages), seconds, mb, cpu, rss)


async def paced_produce(
    bootstrap: str, sets: list[tuple[str, list[bytes]]], rate: float
) -> dict[str, float]:
    """Send the sets' pieces at `rate` messages/s; per chunk id, when (time.time()) the
    broker acknowledged its last piece: the set is complete from then on."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, max_request_size=MAX_REQUEST_BYTES, acks="all"
    )
    await producer.start()
    acked: dict[str, float] = {}

    def on_ack(chunk_id: str) -> Callable[[Any], None]:
        return lambda _: acked.__setitem__(chunk_id, max(acked.get(chunk_id, 0), time.time()))

    futures: list[asyncio.Future[Any]] = []
    started = time.monotonic()
    try:
        for chunk_id, pieces in sets:
            for piece in pieces:
                await asyncio.sleep(max(0.0, started + len(futures) / rate - time.monotonic()))
                future = await producer.send(TOPIC, piece)
                future.add_done_callback(on_ack(chunk_id))
                futures.append(future)
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return acked


def _inserted_ms(workers: list[WorkerProcess], prefix: str) -> dict[str, int]:
    """First insert time (ms) per chunk id whose id starts with `prefix`, over every
    worker's own chDB."""
    sql = (
        f"SELECT chunk_id, toUnixTimestamp64Milli(min(inserted_at)) AS ms FROM {SNAPSHOT_TABLE} "
        f"WHERE startsWith(chunk_id, '{prefix}') GROUP BY chunk_id"
    )
    first: dict[str, int] = {}
    for worker in workers:
        for row in worker.sql(sql):
            ms = int(row["ms"])
            first[row["chunk_id"]] = min(ms, first.get(row["chunk_id"], ms))
    return first


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: an observed value, defined for any non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure_latency(
    messages: list[bytes], bootstrap: str, workers: list[WorkerProcess], pacing: Pacing, tmp: Path
) -> tuple[float | None, float | None]:
    """p50/p99 ms from the ack of a chunk set's last piece to its row's inserted_at, at a
    paced rate once the backlog is gone (a backlog run measures its queue instead)."""
    rows = _rows(workers)
    sets = renamed_sets(messages, round(pacing.rate * pacing.seconds), "lat")
    acked = asyncio.run(paced_produce(bootstrap, sets, pacing.rate))
    deadline = time.monotonic() + 120
    while _rows(workers) < rows + len(sets) and time.monotonic() < deadline:
        _check_alive(workers, tmp)
        time.sleep(0.2)
    inserted = _inserted_ms(workers, "lat")
    delays = [inserted[c] - acked[c] * 1000 for c in acked if c in inserted]
    pieces = sum(len(p) for _, p in sets)
    spread = f", min {min(delays):.0f} max {max(delays):.0f} ms" if delays else ""
    print(
        f"  latency x{len(workers)}: {len(sets)} sets, {pieces} messages at "
        f"{pacing.rate:g} msg/s; {len(delays)} rows found, {len(sets) - len(delays)} missing"
        f"{spread}"
    )
    if not delays:
        return None, None
    return percentile(delays, 50), percentile(delays, 99)


def fresh_broker(messages: list[bytes], tmp: Path) -> Broker:
    broker = start_broker(free_port(), tmp / f"tansu-{time.time()}.log")
    asyncio.run(create_topics(broker.bootstrap, [TOPIC], 4))
    asyncio.run(produce_lines(broker.bootstrap, TOPIC, messages, progress=False))
    return broker


async def _produce_records(bootstrap: str, records: list[ItemsRecord]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=MAX_REQUEST_BYTES)
    await producer.start()
    try:
        sends = [
            await producer.send(ITEMS_TOPIC, r.value, key=r.key, headers=r.headers) for r in records
        ]
        await asyncio.gather(*sends)
    finally:
        await producer.stop()


def items_runs(name: str, target: int, counts: list[int], tmp: Path) -> list[Figure]:
    """The worker(s) draining the workload as items messages, on a fresh broker each."""
    records = items_workload(name, target)
    values = [r.value for r in records]
    print(f"  as items: {len(records)} messages, {sum(map(len, values)) / 1e6:.1f} MB")
    figures = []
    for count in counts:
        broker = start_broker(free_port(), tmp / f"tansu-items-{time.time()}.log")
        try:
            asyncio.run(create_topics(broker.bootstrap, [ITEMS_TOPIC], 4))
            asyncio.run(_produce_records(broker.bootstrap, records))
            figure = worker_run(
                name, values, len(records), broker.bootstrap, tmp, count, {}, Pacing(0, 0)
            )
            figure.kind = f"(d) items topic x{count}"
            figures.append(figure)
        finally:
            broker.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=6000)
    parser.add_argument("--workloads", default="seed003,incremental14k,full")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--items-workers", default="1", help="items-topic runs ('' for none)")
    parser.add_argument("--json", default="bench/results/harness.json")
    parser.add_argument("--latency-rate", type=float, default=100, help="msg/s, paced phase")
    parser.add_argument("--latency-seconds", type=float, default=20, help="0: no latency phase")
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
                        pacing = Pacing(args.latency_rate, args.latency_seconds)
                        figure = worker_run(
                            name, messages, batches, bootstrap, tmp, int(run[1:]), extra, pacing
                        )
                    figures.append(figure)
                finally:
                    broker.stop()
            counts = [int(n) for n in args.items_workers.split(",") if n]
            figures += items_runs(name, args.messages, counts, tmp)
        shutil.rmtree(tmp, ignore_errors=True)
        top = figures[0].rate
        best = max(f.rate for f in figures if f.kind.startswith("(b)"))
        print(f"  {'':<26} {'':>15} {'':>12} {'':>17} {'':>13}   /ceil  /best(b)  p50/p99 ms")
        for figure in figures:
            print(figure.line(top, best if figure.kind.startswith(("(c)", "(d)")) else None))
        results += [asdict(f) | {"rate": f.rate} for f in figures]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
