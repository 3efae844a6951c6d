"""`replay-ingest run`: the embedded local stack in one command.

A Tansu broker, SeaweedFS (the S3 cold tier) and the worker (on chDB under
REPLAY_DATA_DIR) as child processes,
fed by the generator at a modest rate, with a live line of counts read from the
worker's own /metrics. Ctrl-C stops the feed, then the worker, then the broker, each
by the PID we started. ClickHouse and S3 data persist in the data directory; Tansu keeps
everything in memory, so the Kafka side (and the worker's table state that refers to
its offsets) starts afresh on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from config.settings import Settings
from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from replay_ingest.localstack import (
    create_topics,
    start_broker,
    start_s3,
    stop_process,
    wait_for_port,
)
from replay_ingest.produce import bootstrap_of, produce_lines
from streams.topics import CAPTURE_TOPIC

_STATUS = {
    "consumed": "replay_messages_consumed_total",
    "batches": "replay_snapshot_batches_total",
    "rows": "replay_clickhouse_rows_total",
    "dlq": "replay_dlq_messages_total",
}


def scrape(host: str, port: int) -> dict[str, float]:
    """The worker's /metrics: each family summed over its labels, and each sample."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=2) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            family = name.split("{", 1)[0]
            totals[family] = totals.get(family, 0.0) + float(value)
            if name != family:
                totals[name] = float(value)
    return totals


def _status_line(settings: Settings, fed: int) -> str:
    try:
        values = scrape(settings.metrics_host, settings.metrics_port)
    except OSError:
        return f"fed {fed} messages; worker starting..."
    parts = [f"{label} {int(values.get(name, 0))}" for label, name in _STATUS.items()]
    return f"fed {fed} | " + " | ".join(parts)


def _feed(settings: Settings, rate: float, seed: int) -> list[int]:
    """Produce generated sessions forever in a background thread; returns a live counter."""
    fed = [0]

    def lines() -> Iterator[bytes]:
        round_ = 0
        while True:
            start = datetime.now(UTC) - timedelta(hours=1)  # recent sessions, as if live
            opts = GenerateOptions(
                sessions=5, seed=seed + round_, start=start, spread=timedelta(hours=1)
            )
            for messages, _ in generate(opts):
                for message in messages:
                    fed[0] += 1
                    yield message
            round_ += 1

    async def main() -> None:
        await produce_lines(
            bootstrap_of(settings.broker_url), CAPTURE_TOPIC, lines(), rate=rate, progress=False
        )

    import threading

    threading.Thread(target=lambda: asyncio.run(main()), daemon=True).start()
    return fed


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def run_local_stack(settings: Settings, rate: float, seed: int) -> int:
    # Ctrl-C (SIGINT) and SIGTERM both stop everything, even when started in background.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    parts = urlsplit(settings.broker_url.split(";")[0])
    if parts.hostname not in ("127.0.0.1", "localhost") or parts.port is None:
        print(
            "replay-ingest run starts its own broker: REPLAY_BROKER_URL must be "
            "kafka://127.0.0.1:PORT",
            file=sys.stderr,
        )
        return 2
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(settings.data_dir / "faust", ignore_errors=True)
    s3 = urlsplit(settings.s3_endpoint_url)
    if s3.hostname not in ("127.0.0.1", "localhost") or s3.port is None:
        print(
            "replay-ingest run starts its own S3 (SeaweedFS): REPLAY_S3_ENDPOINT_URL must be "
            "http://127.0.0.1:PORT",
            file=sys.stderr,
        )
        return 2
    for name, value in (
        ("AWS_ACCESS_KEY_ID", "replay"),
        ("AWS_SECRET_ACCESS_KEY", "replay"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
    ):
        os.environ.setdefault(name, value)  # SeaweedFS without identities takes any
    broker = start_broker(parts.port, settings.data_dir / "tansu.log")
    worker = seaweed = None
    try:
        seaweed = start_s3(s3.port, settings.data_dir / "seaweedfs", settings.data_dir / "s3.log")
        asyncio.run(create_topics(broker.bootstrap, [CAPTURE_TOPIC], settings.partitions))
        with open(settings.data_dir / "worker.log", "ab") as log_file:
            worker = subprocess.Popen(
                [sys.executable, "-m", "replay_ingest.cli", "worker"],
                env=os.environ.copy(),
                stdout=log_file,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        wait_for_port(settings.metrics_host, settings.metrics_port, 60, worker)
        fed = _feed(settings, rate, seed)
        print(
            f"local stack up: broker {settings.broker_url}, ClickHouse {settings.clickhouse_url}, "
            f"worker log {settings.data_dir / 'worker.log'}. Ctrl-C stops.",
            file=sys.stderr,
        )
        while worker.poll() is None:
            sys.stderr.write("\r" + _status_line(settings, fed[0]).ljust(100))
            sys.stderr.flush()
            time.sleep(1)
        print(f"\nworker exited with {worker.returncode}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nstopping...", file=sys.stderr)
        return 0
    finally:
        if worker is not None:
            with contextlib.suppress(Exception):
                stop_process(worker, timeout=30)
        if seaweed is not None:
            stop_process(seaweed)
        broker.stop()
