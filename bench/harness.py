"""Throughput harness: the pipeline's work ceiling, plain-consumer baselines doing the
same work into the same sink, and the replay-ingest worker end to end, on the same
generated workloads and the same kind of local broker (a fresh Tansu per measurement).

    python3.11 bench/harness.py [--messages 6000] [--workloads seed003,incremental14k,full] \
        [--workers 1,2] [--latency-rate 100] [--latency-seconds 20] \
        [--json bench/results/harness.json]

Prints one table per workload (messages/s, MB/s of compressed input, CPU per message,
RSS, ratios to the ceiling and to the best baseline, and for the workers the
produce-to-ClickHouse latency of a paced phase after the backlog) and writes the
figures as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import math
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from chain import REGISTRY, StageChain

from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from replay_ingest.localstack import create_topics, free_port, start_broker, wait_for_port
from replay_ingest.produce import MAX_REQUEST_BYTES, produce_lines
from replay_ingest.run import scrape
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect, ensure_schema
from sinks.clickhouse.sink import ClickHouseSink
from streams.parse import parse_capture
from streams.topics import CAPTURE_TOPIC as TOPIC

MAX = 64 * 1024 * 1024


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
            batches = await consumer.getmany(timeout_ms=1000, max_records=500)
            for records in batches.values():
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


ROWS = 'replay_clickhouse_rows_total{table="session_recording_events"}'
CONSUMED = "replay_messages_consumed_total"


def _scrape(port: int) -> dict[str, float]:
    try:
        return scrape("127.0.0.1", port)
    except OSError:  # a busy worker may drop one scrape; the next one counts
        return {}


@dataclass
class Worker:
    """A `replay-ingest worker` we started, and the ports it answers on."""

    proc: subprocess.Popen
    metrics_port: int
    web_port: int
    admin_key: str  # for /api/sql

    def metrics(self) -> dict[str, float]:
        return _scrape(self.metrics_port)

    def sql(self, query: str) -> list[list[Any]]:
        """Rows of a read-only query, asked of the worker: it owns its chDB directory and a
        second process cannot open it."""
        url = f"http://127.0.0.1:{self.web_port}/api/sql"
        request = urllib.request.Request(url, data=query.encode(), method="POST")
        request.add_header("Authorization", f"Bearer {self.admin_key}")
        with urllib.request.urlopen(request, timeout=60) as response:
            return list(json.loads(response.read())["rows"])


def start_worker(bootstrap: str, state: Path, app_id: str, extra_env: dict[str, str]) -> Worker:
    """A worker with its own data and chDB directories (and log) under `state`; returns
    once it serves metrics and its web API."""
    metrics_port, web_port = free_port(), free_port()
    admin_key = secrets.token_urlsafe(24)
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")} | {
        "REPLAY_ADMIN_KEY": admin_key,
        "REPLAY_BROKER_URL": f"kafka://{bootstrap}",
        "REPLAY_DATA_DIR": str(state / "data"),
        "REPLAY_APP_ID": app_id,
        "REPLAY_WEB_PORT": str(web_port),
        "REPLAY_METRICS_PORT": str(metrics_port),
        "REPLAY_LOG_LEVEL": "WARNING",
        "REPLAY_CLICKHOUSE_URL": f"chdb://{state / 'ch'}",
    }
    state.mkdir(parents=True, exist_ok=True)
    with open(state / "worker.log", "ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "replay_ingest", "worker"],
            env=env | extra_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = Worker(proc, metrics_port, web_port, admin_key)
    try:
        wait_for_port("127.0.0.1", metrics_port, 60, proc)
        wait_for_port("127.0.0.1", web_port, 60, proc)
    except Exception:
        stop_workers([worker])
        raise
    return worker


def stop_workers(workers: list[Worker]) -> None:
    for worker in workers:
        worker.proc.terminate()  # by the PID we started
    for worker in workers:
        worker.proc.wait(60)


def _check_alive(workers: list[Worker], logs: Path) -> None:
    dead = [w.proc.pid for w in workers if w.proc.poll() is not None]
    assert not dead, f"worker(s) {dead} exited: see {logs}/w*/worker.log"


def consumed_input(metrics: dict[str, float]) -> float | None:
    """Messages taken from the capture topic (the family also counts the internal topics
    the worker feeds itself); None when the scrape failed."""
    label = f'topic="{TOPIC}"'
    mine = [v for k, v in metrics.items() if k.startswith(CONSUMED + "{") and label in k]
    return sum(mine) if metrics else None


def _rows(workers: list[Worker]) -> float:
    return sum(w.metrics().get(ROWS, 0) for w in workers)


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
    workers: list[Worker] = []
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
    name: str, messages: list[bytes], batches: int, workers: list[Worker], tmp: Path
) -> Figure:
    """Throughput of the workers on the backlog: first consumed message to last row."""
    watched = [psutil.Process(w.proc.pid) for w in workers]
    started = cpu0 = None
    rss = 0.0
    deadline = time.monotonic() + 1800
    while time.monotonic() < deadline:
        _check_alive(workers, tmp)
        totals = [w.metrics() for w in workers]
        consumed = sum(t.get(CONSUMED, 0) for t in totals)
        if started is None and consumed > 0:
            started = time.perf_counter()
            cpu0 = sum(sum(p.cpu_times()[:2]) for p in watched)
        rss = max(rss, sum(p.memory_info().rss for p in watched) / 1e6)
        if sum(t.get(ROWS, 0) for t in totals) >= batches:
            break
        time.sleep(0.2)  # a scrape costs the worker CPU: not too often
    assert started is not None and cpu0 is not None, "the workers consumed nothing"
    seconds = time.perf_counter() - started
    cpu = sum(sum(p.cpu_times()[:2]) for p in watched) - cpu0
    mb = sum(map(len, messages)) / 1e6
    kind = f"(c) replay-ingest x{len(workers)}"
    return Figure(name, kind, len(messages), seconds, mb, cpu, rss)


# --- rewriting ids, so that replayed messages make new rows and new chunk sets ---------

Template = tuple[bytes, tuple[bytes, ...]]  # a message and its session, window, chunk ids


def template_of(raw: bytes) -> Template:
    chunk = parse_capture(raw, REGISTRY, MAX)
    ids = tuple(i.encode() for i in (chunk.session_id, chunk.window_id, chunk.chunk_id) if i)
    assert all(len(i) == 36 for i in ids), "expected the generator's UUID ids"
    return raw, ids


def renamed(old: bytes, prefix: bytes) -> bytes:
    """The id with its head replaced: UUIDs stay distinct by their random tail."""
    return prefix + old[len(prefix) :]


def rewrite(template: Template, prefix: bytes) -> bytes:
    """The message with its ids renamed. A plain byte replace is exact: the ids occur
    only as themselves (the base64 payload has no '-'), and it is cheap on 1 MB pieces."""
    raw, ids = template
    for old in ids:
        raw = raw.replace(old, renamed(old, prefix))
    return raw


def renamed_rounds(templates: list[Template], tag: str) -> Iterator[tuple[str, bytes]]:
    """(chunk id, message) of the templates round after round, the ids renamed with the
    tag and the round number: every round makes new rows, chunk sets and sessions."""
    for round_ in itertools.count():
        prefix = f"{tag}{round_:0{8 - len(tag)}d}".encode()
        for template in templates:
            chunk_id = renamed(template[1][-1], prefix)  # the ids end with the chunk id
            yield chunk_id.decode(), rewrite(template, prefix)


def latency_sets(messages: list[bytes], count: int) -> list[tuple[str, list[bytes]]]:
    """Whole chunk sets, at least `count` messages, renamed `lat...` so they are new rows
    (the pieces of a set are consecutive in a workload)."""
    sets: dict[str, list[bytes]] = {}
    rounds = renamed_rounds([template_of(m) for m in messages], "lat")
    for taken, (chunk_id, message) in enumerate(rounds):
        if chunk_id not in sets and taken >= count:
            break
        sets.setdefault(chunk_id, []).append(message)
    return list(sets.items())


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


def _inserted_ms(workers: list[Worker], prefix: str) -> dict[str, int]:
    """First insert time (ms) per chunk id whose id starts with `prefix`, over every
    worker's own chDB."""
    sql = (
        f"SELECT chunk_id, toUnixTimestamp64Milli(min(inserted_at)) FROM {SNAPSHOT_TABLE} "
        f"WHERE startsWith(chunk_id, '{prefix}') GROUP BY chunk_id"
    )
    first: dict[str, int] = {}
    for worker in workers:
        for chunk_id, ms in worker.sql(sql):
            first[chunk_id] = min(int(ms), first.get(chunk_id, int(ms)))
    return first


def percentile(values: list[float], q: float) -> float:
    """Nearest rank: an observed value, defined for any non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


def measure_latency(
    messages: list[bytes], bootstrap: str, workers: list[Worker], pacing: Pacing, tmp: Path
) -> tuple[float | None, float | None]:
    """p50/p99 ms from the ack of a chunk set's last piece to its row's inserted_at, at a
    paced rate once the backlog is gone (a backlog run measures its queue instead)."""
    rows = _rows(workers)
    sets = latency_sets(messages, round(pacing.rate * pacing.seconds))
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
        shutil.rmtree(tmp, ignore_errors=True)
        top = figures[0].rate
        best = max(f.rate for f in figures if f.kind.startswith("(b)"))
        print(f"  {'':<26} {'':>15} {'':>12} {'':>17} {'':>13}   /ceil  /best(b)  p50/p99 ms")
        for figure in figures:
            print(figure.line(top, best if figure.kind.startswith("(c)") else None))
        results += [asdict(f) | {"rate": f.rate} for f in figures]
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
