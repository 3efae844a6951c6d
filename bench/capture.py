"""Capture endpoint throughput: requests/s and MB/s of realistic posthog-js `/s/` bodies
on one core, beside a bare aiohttp handler that only reads the body, in the same run.

    python3.11 -m bench.capture [--seconds 10] [--concurrency 32] [--bodies 300]

Both servers run as child processes pinned to CPU 0; the load generator (this process)
and the Tansu broker share CPU 1. Bodies are what posthog-js 1.449 posts to `/s/`: a
JSON array of `$snapshot` events, gzip-compressed (`text/plain`); nine in ten carry an
incremental batch of ~20 kB of rrweb JSON (its 2 s flush), one in ten a page load (meta
and a full snapshot of ~300 kB). The capture process writes them to a real Tansu broker
(acks=all) before each 200. Prints one line per server.
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import os
import random
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import msgspec
import psutil
from aiohttp import web

from config.teams import DEMO_TOKEN
from replay_ingest.generator.rrweb import SessionWriter
from replay_ingest.localstack import (
    create_topics,
    free_port,
    start_broker,
    stop_process,
    wait_for_port,
)
from replay_ingest.worker_process import scrape
from streams.topics import CAPTURE_TOPIC, ITEMS_TOPIC

SERVER_CPU, CLIENT_CPU = {0}, {1}


@dataclass(frozen=True)
class Body:
    gzipped: bytes
    json_bytes: int


def posthog_bodies(count: int, seed: int = 3) -> list[Body]:
    """`count` gzip `/s/` bodies, as posthog-js sends them for the demo team."""
    rng = random.Random(seed)
    writer = SessionWriter(rng, int(time.time() * 1000) - 3_600_000)
    bodies = []
    for index in range(count):
        if index % 10 == 0:
            events = [writer.meta("https://example.com/"), writer.full_snapshot(300_000)]
        else:
            events = writer.incremental_batch(20_000)
        event = {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "event": "$snapshot",
            "properties": {
                "$snapshot_data": events,
                "$session_id": f"bench-session-{index % 50}",
                "$window_id": f"bench-window-{index % 50}",
                "$lib": "web",
                "$lib_version": "1.449.2",
                "token": DEMO_TOKEN,
                "distinct_id": f"bench-user-{index % 50}",
            },
        }
        text = msgspec.json.encode([event])
        bodies.append(Body(gzip.compress(text, 6), len(text)))
    return bodies


def bare_server(port: int) -> None:
    """The baseline: an aiohttp handler that reads the body and answers 200."""

    async def read(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": 1})

    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/s/", read)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None)


@dataclass
class Result:
    requests: int
    failures: int
    seconds: float
    sent_bytes: int
    json_bytes: int
    cpu_seconds: float


async def load(url: str, bodies: list[Body], seconds: float, concurrency: int) -> Result:
    """Post the bodies round-robin from `concurrency` clients for `seconds`."""
    done = failures = sent = decoded = 0
    deadline = time.monotonic() + seconds
    headers = {"Content-Type": "text/plain"}

    async def client(offset: int) -> None:
        nonlocal done, failures, sent, decoded
        index = offset
        async with aiohttp.ClientSession() as session:
            while time.monotonic() < deadline:
                body = bodies[index % len(bodies)]
                index += concurrency
                async with session.post(url, data=body.gzipped, headers=headers) as answer:
                    await answer.read()
                    if answer.status != 200:
                        failures += 1
                        continue
                done += 1
                sent += len(body.gzipped)
                decoded += body.json_bytes

    started = time.monotonic()
    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return Result(done, failures, time.monotonic() - started, sent, decoded, 0.0)


def measure(
    proc: subprocess.Popen, url: str, bodies: list[Body], args: argparse.Namespace
) -> Result:
    server = psutil.Process(proc.pid)
    asyncio.run(load(url, bodies[:20], 1.0, 4))  # warm up
    before = server.cpu_times()
    result = asyncio.run(load(url, bodies, args.seconds, args.concurrency))
    after = server.cpu_times()
    result.cpu_seconds = (after.user - before.user) + (after.system - before.system)
    return result


def show(name: str, result: Result) -> None:
    per_second = result.requests / result.seconds
    print(
        f"{name:<8} {per_second:8.0f} req/s  {result.sent_bytes / result.seconds / 1e6:7.1f} "
        f"MB/s gzip  {result.json_bytes / result.seconds / 1e6:7.1f} MB/s JSON  "
        f"server CPU {result.cpu_seconds / result.seconds:4.2f} cores  "
        f"{1e6 * result.cpu_seconds / max(1, result.requests):6.0f} us/req  "
        f"failures {result.failures}"
    )


def start(command: list[str], port: int, env: dict[str, str], log: Path) -> subprocess.Popen:
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    os.sched_setaffinity(proc.pid, SERVER_CPU)
    wait_for_port("127.0.0.1", port, 60, proc)
    return proc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--bodies", type=int, default=300)
    parser.add_argument("--bare", type=int, help=argparse.SUPPRESS)  # the baseline server
    args = parser.parse_args()
    if args.bare:
        bare_server(args.bare)
        return
    os.sched_setaffinity(0, CLIENT_CPU)
    bodies = posthog_bodies(args.bodies)
    mean_gzip = sum(len(b.gzipped) for b in bodies) / len(bodies)
    mean_json = sum(b.json_bytes for b in bodies) / len(bodies)
    mean = f"mean {mean_gzip / 1e3:.1f} kB gzip, {mean_json / 1e3:.1f} kB JSON"
    print(f"{len(bodies)} bodies: {mean}")
    with tempfile.TemporaryDirectory() as tmp:
        run(Path(tmp), bodies, args)


def run(tmp: Path, bodies: list[Body], args: argparse.Namespace) -> None:
    broker = start_broker(free_port(), tmp / "tansu.log")
    try:
        os.sched_setaffinity(broker.proc.pid, CLIENT_CPU)
        asyncio.run(create_topics(broker.bootstrap, [ITEMS_TOPIC, CAPTURE_TOPIC], 4))
        bare_port, capture_port = free_port(), free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
        env |= {
            "REPLAY_BROKER_URL": broker.url,
            "REPLAY_CAPTURE_PORT": str(capture_port),
            "REPLAY_DATA_DIR": str(tmp / "data"),
            "REPLAY_CAPTURE_RATE_PER_SECOND": "1000000",
            "REPLAY_CAPTURE_RATE_BURST": "1000000",
            "REPLAY_LOG_LEVEL": "WARNING",
        }
        bare = [sys.executable, "-m", "bench.capture", "--bare", str(bare_port)]
        proc = start(bare, bare_port, env, tmp / "bare.log")
        try:
            show("bare", measure(proc, f"http://127.0.0.1:{bare_port}/s/", bodies, args))
        finally:
            stop_process(proc)
        capture = [sys.executable, "-m", "replay_ingest", "capture"]
        proc = start(capture, capture_port, env, tmp / "capture.log")
        try:
            _wait_connected(capture_port)
            show("capture", measure(proc, f"http://127.0.0.1:{capture_port}/s/", bodies, args))
        finally:
            stop_process(proc)
    finally:
        broker.stop()


def _wait_connected(port: int) -> None:
    deadline = time.monotonic() + 60
    while not scrape("127.0.0.1", port).total("replay_capture_kafka_connected"):
        if time.monotonic() > deadline:
            raise TimeoutError("capture did not connect to Kafka")
        time.sleep(0.1)


if __name__ == "__main__":
    main()
