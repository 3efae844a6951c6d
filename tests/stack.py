"""The real parts the end-to-end tests run against, on 127.0.0.1 with free ports, stopped
by PID: a Tansu broker, moto's S3 server and `replay-ingest worker` processes on chDB.
The fixtures that start them per test are in tests/conftest.py."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from replay_ingest import worker_process
from replay_ingest.localstack import Broker, create_topics, free_port
from streams.topics import CAPTURE_TOPIC, DLQ_OF

CAPTURE = CAPTURE_TOPIC
DLQ = DLQ_OF[CAPTURE_TOPIC]
PARTITIONS = 4
BUCKET, PREFIX = "replay-test", "recordings"  # where the workers spill (REPLAY_S3_URL)
# Summary windows that close and flush within seconds (worker overrides).
WINDOWS = {
    "summary_window_seconds": "300",
    "summary_window_expiry_seconds": "5",
    "summary_flush_interval_seconds": "1",
}
T = TypeVar("T")

TEAMS = [
    {
        "team_id": 1,
        "token": "token-1",
        "recording_enabled": True,
        "retention_days": 7,
        "read_key": "read-key-1",
        "write_key": "write-key-1",
    },
    {
        "team_id": 2,
        "token": "token-2",
        "recording_enabled": True,
        "retention_days": 30,
        "read_key": "read-key-2",
        "write_key": "write-key-2",
    },
    {"team_id": 3, "token": "token-disabled", "recording_enabled": False, "retention_days": 7},
]


def wait_until(check: Callable[[], T], timeout: float, what: str, interval: float = 0.2) -> T:
    """Poll `check` until it returns something truthy; fail with `what` at the deadline."""
    deadline = time.monotonic() + timeout
    last: Any = None  # shown on failure
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class S3Server:
    """moto's S3 server on 127.0.0.1 (in memory), started and stopped by PID."""

    proc: subprocess.Popen
    port: int

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self) -> Any:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint, **AWS)

    def objects(self, bucket: str = BUCKET) -> dict[str, bytes]:
        """Every object of the bucket, by key."""
        client = self.client()
        listing = client.list_objects_v2(Bucket=bucket).get("Contents", [])
        return {
            o["Key"]: client.get_object(Bucket=bucket, Key=o["Key"])["Body"].read() for o in listing
        }


AWS = {"aws_access_key_id": "test", "aws_secret_access_key": "test", "region_name": "us-east-1"}


class WorkerProcess(worker_process.WorkerProcess):
    """The production worker process (replay_ingest.worker_process), plus what only the
    tests ask of it."""

    def start(self, timeout: float = 60) -> WorkerProcess:
        super().start(timeout)
        return self  # (typed as this class, so that `.start().scalar(...)` checks)

    def scalar(self, query: str) -> Any:
        """The first value of the first row of a query."""
        rows = self.sql(query)
        return next(iter(rows[0].values()))


# The `dead_disk` fixture's factory (tests/e2e/conftest.py).
DeadDisk = Callable[[Path], AbstractContextManager[None]]


class Ingest(Protocol):
    """The `ingested` fixture's factory (tests/e2e/conftest.py): a stopped worker that
    ingested the archive workload of (sessions, seed), and per session its truth."""

    def __call__(self, sessions: int, seed: int) -> tuple[WorkerProcess, dict[str, Any]]: ...


@dataclass
class Stack:
    """A broker plus a factory of workers sharing one app id (consumer group)."""

    broker: Broker
    tmp_path: Path
    app_id: str = field(default_factory=lambda: f"test-{uuid.uuid4().hex[:8]}")
    s3_endpoint: str = "http://127.0.0.1:9"  # nothing listens: tests without S3 never reach it
    workers: list[WorkerProcess] = field(default_factory=list)

    def worker(self, name: str = "w1", **overrides: str) -> WorkerProcess:
        """A worker (not started) with its own data dir and ports; overrides are REPLAY_*."""
        teams = self.tmp_path / "teams.json"
        teams.write_text(json.dumps(TEAMS))
        data_dir = self.tmp_path / name
        env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
        env |= {
            "REPLAY_BROKER_URL": self.broker.url,
            "REPLAY_DATA_DIR": str(data_dir),
            "REPLAY_APP_ID": self.app_id,
            "REPLAY_TEAMS_FILE": str(teams),
            "REPLAY_WEB_PORT": str(free_port()),
            "REPLAY_METRICS_PORT": str(free_port()),
            "REPLAY_PARTITIONS": str(PARTITIONS),
            "REPLAY_TAKE_MAX_SECONDS": "0.5",
            "REPLAY_SINK_RETRY_MAX_SECONDS": "1",
            "REPLAY_S3_URL": f"s3://{BUCKET}/{PREFIX}",
            "REPLAY_S3_ENDPOINT_URL": self.s3_endpoint,
            "REPLAY_SPILL_INTERVAL_SECONDS": "100000",
            # the fixtures are dated 2026: keep them plausible for years to come
            "REPLAY_MAX_EVENT_AGE_DAYS": "3650",
            "AWS_ACCESS_KEY_ID": AWS["aws_access_key_id"],
            "AWS_SECRET_ACCESS_KEY": AWS["aws_secret_access_key"],
            "AWS_DEFAULT_REGION": AWS["region_name"],
        }
        env |= {f"REPLAY_{k.upper()}": v for k, v in overrides.items()}
        worker = WorkerProcess(env, self.tmp_path / f"{name}.log")
        self.workers.append(worker)
        return worker

    def produce(
        self,
        values: Sequence[bytes | None],
        partitions: list[int] | None = None,
        topic: str = CAPTURE,
        headers: list[list[tuple[str, bytes]] | None] | None = None,
    ) -> None:
        asyncio.run(produce(self.broker.bootstrap, topic, values, partitions, headers))

    def consume(self, topic: str, count: int, timeout: float = 30) -> list[Any]:
        return asyncio.run(consume(self.broker.bootstrap, topic, count, timeout))

    def create_topics(self, *topics: str) -> None:
        """Input topics beyond the capture topic the broker fixture makes, with the
        workers' partition count (before a worker subscribes to them)."""
        asyncio.run(create_topics(self.broker.bootstrap, list(topics), PARTITIONS))


async def produce(
    bootstrap: str,
    topic: str,
    values: Sequence[bytes | None],
    partitions: list[int] | None = None,
    headers: list[list[tuple[str, bytes]] | None] | None = None,
) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=16 * 1024 * 1024)
    await producer.start()
    try:
        futures = []
        for index, value in enumerate(values):
            partition = None if partitions is None else partitions[index]
            extra = None if headers is None else headers[index]
            key = b"tombstone" if value is None else None  # Kafka needs one of the two
            futures.append(
                await producer.send(topic, value, key=key, partition=partition, headers=extra)
            )
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def consume(bootstrap: str, topic: str, count: int, timeout: float) -> list[Any]:
    """Read `count` records of `topic` from the beginning (fails at the deadline)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        enable_auto_commit=False,
        fetch_max_bytes=64 * 1024 * 1024,
        max_partition_fetch_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    try:
        deadline = time.monotonic() + timeout
        while len(records) < count and time.monotonic() < deadline:
            fetched = await consumer.getmany(timeout_ms=500)
            for records_of_partition in fetched.values():
                records.extend(records_of_partition)
    finally:
        await consumer.stop()
    assert len(records) >= count, f"{topic}: {len(records)} records after {timeout}s, want {count}"
    return records


async def committed_offsets(bootstrap: str, group: str, topic: str) -> dict[int, int]:
    """The consumer group's committed offset per partition (-1 where none)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        result = {}
        for partition in range(PARTITIONS):
            offset = await consumer.committed(TopicPartition(topic, partition))
            result[partition] = -1 if offset is None else offset
        return result
    finally:
        await consumer.stop()


def archived_pairs(lines: list[Any]) -> list[tuple[str, Any]]:
    """The lines of an archived object (tests.checks.lines_of) as (window_id, event): a
    ``[window_id, event]`` line, or a bare event as objects of older versions hold them
    (window "")."""
    pairs = []
    for line in lines:
        if isinstance(line, dict):
            pairs.append(("", line))
        else:
            assert isinstance(line, list) and len(line) == 2 and isinstance(line[0], str), line
            pairs.append((line[0], line[1]))
    return pairs


def archived_events(lines: list[Any]) -> list[Any]:
    """The events of an archived object's lines, whatever their format."""
    return [event for _, event in archived_pairs(lines)]


import sys  # noqa: E402  (additions to this module go at its end)

# Records one erasure request as the erasure package does, in a process of its own: chDB
# opens one data directory per process, and pytest's own process has one already.
_RECORD_ERASURE = """
import sys, json, uuid
from datetime import UTC, datetime
from sinks.clickhouse.queries import Insert, execute
from sinks.clickhouse.schema import DELETIONS_TABLE, connect
url, team_id, kind, sessions, distinct_id, before_ms = json.loads(sys.argv[1])
columns = ("deletion_id", "team_id", "kind", "session_ids", "distinct_id", "before",
           "requested_by", "requested_at", "state")
row = [str(uuid.uuid4()), team_id, kind, sessions, distinct_id,
       datetime.fromtimestamp(before_ms / 1000, UTC), "tests", datetime.now(UTC), "requested"]
client = connect(url)
try:
    execute(client, Insert(DELETIONS_TABLE, columns, [row]))
finally:
    client.close()
"""


def record_erasure(
    worker: WorkerProcess,
    team_id: int,
    kind: str,
    sessions: Sequence[str] = (),
    distinct_id: str = "",
    before_ms: int = 0,
) -> None:
    """Write an erasure request (a `session_recording_deletions` row) into a stopped
    worker's chDB, as if recorded just before it stopped: the next start must know it."""
    assert not worker.running(), "the worker owns its chDB while it runs"
    args = [worker.settings.clickhouse_url, team_id, kind, list(sessions), distinct_id, before_ms]
    subprocess.run(
        [sys.executable, "-c", _RECORD_ERASURE, json.dumps(args)],
        cwd=Path(__file__).resolve().parents[1],
        check=True,
        capture_output=True,
        timeout=120,
    )
