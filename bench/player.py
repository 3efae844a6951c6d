"""How fast a large session starts playing on the player page, and what the worker holds
while it streams, beside the time to download the whole session in the same run.

    python3.11 -m bench.player [--megabytes 100] [--runs 3]

Starts Tansu and a worker on chDB (in a temporary folder), writes one session of about
`--megabytes` of rrweb JSON as `$snapshot_items` messages (a meta and a 2 MB full
snapshot, then incremental batches of ~250 kB), waits until all of it is stored, then:

* baseline: GET .../events read to its end by Python (what a player that waits for the
  whole session before starting would wait for, minus its parsing);
* the page: headless Chromium (Debian's chromium, playwright-core from npm) opens the
  share link and reports when `replayState` became `playing` and when every event had
  arrived in the page; the worker's RSS is sampled meanwhile.

Needs chromium and npm (rrweb-player and playwright-core are installed into the
temporary folder from the registry).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import msgspec
import psutil
from aiokafka import AIOKafkaProducer

from replay_ingest.generator.rrweb import SessionWriter
from replay_ingest.localstack import create_topics, free_port, start_broker
from replay_ingest.worker_process import WorkerProcess
from streams.topics import ITEMS_TOPIC

PROBE = Path(__file__).parent / "player_probe.cjs"
TEAM = {
    "team_id": 1,
    "token": "bench-token",
    "recording_enabled": True,
    "read_key": "bench-read-key-1",
}
BATCH_JSON_BYTES = 250_000


def session_messages(megabytes: int, session: str) -> tuple[list[bytes], int, int]:
    """Items messages of one session of about `megabytes` of JSON: values, events, bytes."""
    # a week back: the batches span a day or more of recorded time, none in the future
    writer = SessionWriter(random.Random(7), int(time.time() * 1000) - 7 * 86_400_000)
    batches = [[writer.meta("https://example.com/"), writer.full_snapshot(2_000_000)]]
    size = 0
    while size < megabytes * 1_000_000:
        batch = writer.incremental_batch(BATCH_JSON_BYTES)
        size += len(msgspec.json.encode(batch))
        batches.append(batch)
    values = [_items(session, batch) for batch in batches]
    return values, sum(len(b) for b in batches), size


def _items(session: str, events: list[Any]) -> bytes:
    properties = {"$session_id": session, "$window_id": "bench-window", "$snapshot_items": events}
    data = {"event": "$snapshot_items", "properties": properties}
    body = {
        "uuid": str(uuid.uuid4()),
        "distinct_id": "bench-user",
        "token": TEAM["token"],
        "event": "$snapshot_items",
        "timestamp": events[0]["timestamp"],
        "data": msgspec.json.encode(data).decode(),
    }
    return msgspec.json.encode(body)


async def produce(bootstrap: str, values: list[bytes]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8_000_000)
    await producer.start()
    try:
        for value in values:
            await producer.send_and_wait(ITEMS_TOPIC, value, key=b"bench")
    finally:
        await producer.stop()


def npm_install(folder: Path, *packages: str) -> None:
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder), *packages]
    subprocess.run(command, check=True, capture_output=True, timeout=600)


def start_worker(tmp: Path, bootstrap: str) -> WorkerProcess:
    teams = tmp / "teams.json"
    teams.write_text(json.dumps([TEAM]))
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")} | {
        "REPLAY_BROKER_URL": f"kafka://{bootstrap}",
        "REPLAY_DATA_DIR": str(tmp / "worker"),
        "REPLAY_TEAMS_FILE": str(teams),
        "REPLAY_WEB_PORT": str(free_port()),
        "REPLAY_METRICS_PORT": str(free_port()),
        "REPLAY_PLAYER_ASSETS_DIR": str(tmp / "player"),
        "REPLAY_APP_ID": f"bench-{uuid.uuid4().hex[:8]}",
    }
    subprocess.run(
        [sys.executable, "-m", "replay_ingest", "player", "install"], env=env, check=True
    )
    return WorkerProcess(env, tmp / "worker.log").start()


def stored_bytes(worker: WorkerProcess, session: str) -> int:
    rows = worker.sql(
        f"SELECT sum(size) AS n FROM session_recording_events FINAL WHERE session_id = '{session}'"
    )
    return int(rows[0]["n"] or 0)


def download(url: str) -> tuple[float, int]:
    """Seconds to read the whole events stream, and its bytes."""
    started = time.monotonic()
    total = 0
    with urllib.request.urlopen(url, timeout=600) as answer:
        while chunk := answer.read(1 << 20):
            total += len(chunk)
    return time.monotonic() - started, total


class PeakRss:
    """The worker's peak RSS while sampling (every 50 ms, in a thread)."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = self.process.memory_info().rss
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stopping.wait(0.05):
            self.peak = max(self.peak, self.process.memory_info().rss)

    def __enter__(self) -> PeakRss:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--megabytes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-player-") as folder:
        run(Path(folder), args)


def run(tmp: Path, args: argparse.Namespace) -> None:
    npm_install(tmp / "npm", "playwright-core@1.64.1")
    broker = start_broker(free_port(), tmp / "tansu.log")
    try:
        asyncio.run(create_topics(broker.bootstrap, [ITEMS_TOPIC], 4))
        worker = start_worker(tmp, broker.bootstrap)
        try:
            measure(tmp, broker.bootstrap, worker, args)
        finally:
            worker.stop()
    finally:
        broker.stop()


def measure(tmp: Path, bootstrap: str, worker: WorkerProcess, args: argparse.Namespace) -> None:
    session = f"bench-{uuid.uuid4().hex[:8]}"
    values, events, size = session_messages(args.megabytes, session)
    asyncio.run(produce(bootstrap, values))
    deadline = time.monotonic() + 600
    while stored_bytes(worker, session) < size and time.monotonic() < deadline:
        time.sleep(1)  # polling the worker for the ingest to finish, not a measurement
    base = f"http://127.0.0.1:{worker.web_port}"
    link = (
        subprocess.run(
            [
                sys.executable,
                "-m",
                "replay_ingest",
                "sessions",
                "share",
                "--team",
                "1",
                "--session",
                session,
            ],
            env=worker.env,
            capture_output=True,
            text=True,
            check=True,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    token = link.rsplit("token=", 1)[1]
    events_url = f"{base}/api/teams/1/sessions/{session}/events?token={token}"
    print(f"session: {len(values)} messages, {events} events, {size / 1e6:.1f} MB of rrweb JSON")
    for number in range(1, args.runs + 1):
        with PeakRss(worker.proc.pid if worker.proc else 0) as rss:
            before = rss.peak
            seconds, nbytes = download(events_url)
        print(
            f"run {number} baseline: whole events stream read by Python in {seconds:.2f} s "
            f"({nbytes / 1e6 / seconds:.0f} MB/s); worker RSS {before / 1e6:.0f} -> peak "
            f"{rss.peak / 1e6:.0f} MB"
        )
        with PeakRss(worker.proc.pid if worker.proc else 0) as rss:
            before = rss.peak
            probe = {
                "packages": str(tmp / "npm"),
                "chromium": shutil.which("chromium") or "chromium",
                "url": f"{link}&live=0",
                "events": events,
            }
            out = subprocess.run(
                ["node", str(PROBE), json.dumps(probe)], capture_output=True, text=True, timeout=900
            )
        if out.returncode != 0:
            print(f"run {number} page: failed: {out.stderr[-2000:]}")
            continue
        result = json.loads(out.stdout)
        print(
            f"run {number} page: playing after {result['playing'] / 1000:.2f} s "
            f"({result['loadedAtPlaying']} then), every event in the page after "
            f"{result['loaded'] / 1000:.2f} s; worker RSS {before / 1e6:.0f} -> peak "
            f"{rss.peak / 1e6:.0f} MB"
        )


if __name__ == "__main__":
    main()
