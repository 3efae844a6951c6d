"""Memory soak: one replay-ingest worker over a long stream of seed-003-sized messages,
its RSS sampled against the messages it has consumed, to tell a warm-up from a leak.

    python3.11 -m bench.soak [--messages 200000] [--templates 3000] [--ahead 5000] \
        [--every 2] [--warmup 0.2] [--worker-env REPLAY_X=V ...] [--json bench/results/soak.json]

A few thousand generated messages are replayed in rounds, each round with fresh session,
window and chunk ids (new rows, new chunk sets, new session windows), produced while the
worker consumes and never more than `--ahead` messages ahead of it. Prints RSS at each
10% of the run, the RSS after warm-up against the maximum and the end, and the slope
after warm-up (MB per 100k messages); Tansu's RSS is shown apart. Writes JSON too.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil
from aiokafka import AIOKafkaProducer

from bench.harness import (
    TOPIC,
    consumed_input,
    metrics,
    rows,
    start_worker,
    stop_workers,
)
from bench.workloads import Template, first_messages, renamed_rounds, template_of
from replay_ingest.localstack import Broker, create_topics, free_port, start_broker
from replay_ingest.produce import MAX_REQUEST_BYTES
from replay_ingest.worker_process import WorkerProcess


def templates(count: int) -> list[Template]:
    """The first whole batches of the seed-003 distribution, about `count` messages: the
    generator is slow, so the soak replays these instead of generating 200k."""
    return [template_of(raw) for raw in first_messages(count)]


class Feed:
    """Produces the templates round after round, renamed per round, from a thread, at
    most `ahead` messages beyond the worker's consumed count: the worker sees a steady
    stream, and nothing waits in the broker long (Tansu keeps every record anyway, with
    no retention, so its RSS grows with the run whatever the backlog)."""

    def __init__(self, bootstrap: str, templates: list[Template], total: int, ahead: int):
        self.bootstrap, self.templates, self.total, self.ahead = bootstrap, templates, total, ahead
        self.sent = 0
        self.consumed = 0  # kept current by the sampler
        self.error: BaseException | None = None
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._produce())
        except BaseException as exc:  # reported by the sampler, in the main thread
            self.error = exc

    async def _produce(self) -> None:
        producer = AIOKafkaProducer(
            bootstrap_servers=self.bootstrap,
            max_request_size=MAX_REQUEST_BYTES,
            linger_ms=5,
            acks="all",
        )
        await producer.start()
        pending: list[asyncio.Future[Any]] = []
        try:
            for _, message in renamed_rounds(self.templates, "soak"):
                if self.sent >= self.total or self.stopping.is_set():
                    break
                while self.sent - self.consumed >= self.ahead and not self.stopping.is_set():
                    await asyncio.sleep(0.1)
                pending.append(await producer.send(TOPIC, message))
                self.sent += 1
                if len(pending) >= 500:
                    await asyncio.gather(*pending)
                    pending.clear()
            await asyncio.gather(*pending)
        finally:
            await producer.stop()


@dataclass
class Sample:
    seconds: float
    consumed: int
    worker_mb: float
    tansu_mb: float


def watch(worker: WorkerProcess, broker: Broker, feed: Feed, every: float) -> list[Sample]:
    """Sample RSS and the consumed count every `every` seconds until all are consumed."""
    assert worker.proc is not None
    worker_proc, tansu = psutil.Process(worker.proc.pid), psutil.Process(broker.proc.pid)
    samples: list[Sample] = []
    started = moved = time.monotonic()
    consumed = 0
    while consumed < feed.total:
        time.sleep(every if samples else 0)
        assert worker.running(), "the worker exited: see its worker.log"
        if feed.error is not None:
            raise RuntimeError("the producer failed") from feed.error
        now, before = time.monotonic(), consumed
        consumed = int(consumed_input(metrics(worker)) or consumed)  # dropped scrape: keep
        feed.consumed = consumed
        rss = worker_proc.memory_info().rss / 1e6, tansu.memory_info().rss / 1e6
        samples.append(Sample(now - started, consumed, *rss))
        sys.stderr.write(
            f"\rconsumed {consumed}/{feed.total}, sent {feed.sent}, "
            f"worker {rss[0]:.0f} MB, Tansu {rss[1]:.0f} MB "
        )
        moved = now if consumed > before else moved
        if now - moved > 300:
            raise TimeoutError(f"no progress for 5 minutes at {consumed} messages")
    sys.stderr.write("\n")
    return samples


def summary(samples: list[Sample], total: int, warmup: float) -> dict[str, Any]:
    """RSS at warm-up, its maximum after warm-up and at the end, and the least-squares
    slope after warm-up: growth that keeps going is a leak, a plateau is a cache."""
    warm = next(s for s in samples if s.consumed >= warmup * total)
    after = [s for s in samples if s.consumed >= warm.consumed]
    top = max(after, key=lambda s: s.worker_mb)
    slope = None
    if len({s.consumed for s in after}) >= 2:
        fit = statistics.linear_regression(
            [s.consumed for s in after], [s.worker_mb for s in after]
        )
        slope = fit.slope * 100_000
    return {
        "warmup_messages": warm.consumed,
        "warmup_mb": warm.worker_mb,
        "max_mb": top.worker_mb,
        "max_at_messages": top.consumed,
        "end_mb": samples[-1].worker_mb,
        "slope_mb_per_100k": slope,
        "seconds": samples[-1].seconds,
        "tansu_start_mb": samples[0].tansu_mb,
        "tansu_end_mb": samples[-1].tansu_mb,
    }


def report(samples: list[Sample], total: int, facts: dict[str, Any]) -> None:
    """RSS at each 10% mark, and the peak since the previous mark: a batch of large
    messages moves RSS by a few hundred MB between samples, so one sample alone misleads."""
    print(
        f"\n  {'messages':>9} {'of run':>7} {'seconds':>8} {'worker MB':>10} "
        f"{'peak in 10%':>12} {'Tansu MB':>9}"
    )
    previous = -1
    for tenth in range(11):
        s = next(s for s in samples if s.consumed >= tenth * total / 10)
        since = [x.worker_mb for x in samples if previous < x.consumed <= s.consumed]
        peak = max(since, default=s.worker_mb)  # two marks on one sample: a short run
        previous = s.consumed
        print(
            f"  {s.consumed:>9,} {tenth * 10:>6}% {s.seconds:>8.0f} {s.worker_mb:>10.0f} "
            f"{peak:>12.0f} {s.tansu_mb:>9.0f}"
        )
    slope = facts["slope_mb_per_100k"]
    print(
        f"\n  worker RSS: {facts['warmup_mb']:.0f} MB after warm-up "
        f"({facts['warmup_messages']:,} messages), max {facts['max_mb']:.0f} MB "
        f"(at {facts['max_at_messages']:,}), end {facts['end_mb']:.0f} MB; slope after "
        f"warm-up {'-' if slope is None else f'{slope:+.1f}'} MB per 100k messages"
    )
    print(
        f"  Tansu RSS (not the worker's): {facts['tansu_start_mb']:.0f} -> "
        f"{facts['tansu_end_mb']:.0f} MB; {total / facts['seconds']:,.0f} msg/s overall, "
        f"{facts['rows']:,.0f} snapshot rows written by then"
    )


def soak(args: argparse.Namespace, tmp: Path) -> tuple[list[Sample], float]:
    """Broker, worker and feed up; samples until the worker has consumed them all; every
    process stopped (by the PID we started) whatever happens."""
    broker = start_broker(free_port(), tmp / "tansu.log")
    feed = worker = None
    try:
        asyncio.run(create_topics(broker.bootstrap, [TOPIC], 4))
        extra = dict(e.split("=", 1) for e in args.worker_env)
        worker = start_worker(broker.bootstrap, tmp / "w0", f"soak-{int(time.time())}", extra)
        feed = Feed(broker.bootstrap, templates(args.templates), args.messages, args.ahead)
        feed.thread.start()
        samples = watch(worker, broker, feed, args.every)
        return samples, rows(metrics(worker))
    finally:
        if feed is not None:
            feed.stopping.set()
            feed.thread.join(30)
        if worker is not None:
            stop_workers([worker])
        broker.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=200_000)
    parser.add_argument("--templates", type=int, default=3000, help="generated messages reused")
    parser.add_argument("--ahead", type=int, default=5000, help="most messages not yet consumed")
    parser.add_argument("--every", type=float, default=2.0, help="seconds between samples")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run")
    parser.add_argument("--json", default="bench/results/soak.json")
    parser.add_argument("--worker-env", action="append", default=[], metavar="REPLAY_X=VALUE")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soak-"))
    try:
        samples, rows = soak(args, tmp)
    except BaseException:
        print(f"\nkept for its logs: {tmp}", file=sys.stderr)
        raise
    shutil.rmtree(tmp, ignore_errors=True)
    facts = summary(samples, args.messages, args.warmup) | {"rows": rows}
    report(samples, args.messages, facts)
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    document = {"args": vars(args), "summary": facts, "samples": [asdict(s) for s in samples]}
    Path(args.json).write_text(json.dumps(document, indent=2))
    print(f"\nwritten: {args.json}")


if __name__ == "__main__":
    main()
