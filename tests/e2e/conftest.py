"""Fixtures that start the real parts per test (tests/stack.py holds them): a Tansu
broker, moto's S3 server, a stack of workers, a chDB database in this process, the
archive workload ingested by a worker, and a disk that refuses every write."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import uuid
from collections.abc import Generator, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from replay_ingest.localstack import (
    Broker,
    create_topics,
    free_port,
    spawn,
    start_broker,
    stop_process,
)
from sinks.clickhouse.schema import connect, ensure_schema
from tests import workloads
from tests.stack import (
    CAPTURE,
    PARTITIONS,
    WINDOWS,
    DeadDisk,
    Ingest,
    S3Server,
    Stack,
    WorkerProcess,
    wait_until,
)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    started = start_broker(free_port(), tmp_path / "tansu.log")
    asyncio.run(create_topics(started.bootstrap, [CAPTURE], PARTITIONS))
    yield started
    started.stop()


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[S3Server]:
    port = free_port()
    proc = spawn(["moto_server", "-H", "127.0.0.1", "-p", str(port)], port, tmp_path / "moto.log")
    yield S3Server(proc, port)
    stop_process(proc)


@pytest.fixture
def stack(broker: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Stack]:
    made = Stack(broker, tmp_path)
    yield made
    failed = getattr(request.node, "rep_call", None)
    for worker in made.workers:
        if failed is not None and failed.failed:
            print(f"--- {worker.log_path.name} ---\n{worker.log_tail()}")
        worker.stop()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo
) -> Generator[None, Any, None]:
    """Keep the call's report on the item: the stack fixture prints logs of a failure."""
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]


@pytest.fixture(scope="session")
def chdb_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The one chDB engine of this process, for the tests that open ClickHouse in pytest's
    own process. chDB runs one engine path per process, up for as long as any connection
    to it lives, and a connection can outlive its test (one that inserted refused rows
    has been seen to): so each such test has a database of its own on this one path."""
    return tmp_path_factory.mktemp("chdb") / "engine"


def chdb_database(chdb_path: Path, name: str) -> str:
    """The URL of a new, empty database `name` on the process's chDB engine."""
    client = connect(f"chdb://{chdb_path}")
    try:
        client.command(f"CREATE DATABASE {name}")
    finally:
        client.close()
    return f"chdb://{chdb_path}?database={name}"


@pytest.fixture(scope="module")
def chdb_url(chdb_path: Path, request: pytest.FixtureRequest) -> str:
    """The module's database on the chDB engine, with the schema (made twice: it is
    idempotent)."""
    url = chdb_database(chdb_path, request.module.__name__.rpartition(".")[2])
    client = connect(url)
    try:
        ensure_schema(client)
        ensure_schema(client)
    finally:
        client.close()
    return url


@pytest.fixture
def empty_chdb_url(chdb_path: Path) -> str:
    """A database of this test's own on the chDB engine, without a schema."""
    return chdb_database(chdb_path, f"t{uuid.uuid4().hex}")


@pytest.fixture
def ingested(stack: Stack, s3_server: S3Server) -> Ingest:
    """Factory: the archive workload (tests.workloads.archive_sessions) of `sessions`
    sessions ingested and summarised by a worker spilling to `s3_server`, then stopped
    (which frees chDB for the spill and the CLI); returns the worker and the sessions."""

    def ingest(sessions: int, seed: int) -> tuple[WorkerProcess, dict[str, Any]]:
        stack.s3_endpoint = s3_server.endpoint
        messages, expected = workloads.archive_sessions(sessions, seed)
        worker = stack.worker(**WINDOWS).start()
        stack.produce(messages)
        total = len(messages)
        wait_until(
            lambda: worker.scalar("SELECT sum(message_count) FROM session_replay_summary") == total,
            180,
            "every session summarised",
        )
        worker.stop()
        return worker, expected

    return ingest


def _chattr(path: Path, flag: str) -> None:
    subprocess.run(["chattr", "-R", flag, str(path)], check=True, capture_output=True)


@pytest.fixture
def dead_disk(tmp_path: Path) -> DeadDisk:
    """Factory: `with dead_disk(path):` nothing under `path` can be created or changed
    (chattr +i), as a disk refusing every write; skips the test where the filesystem
    has no immutable files."""
    probe = tmp_path / "immutable-probe"
    probe.mkdir()
    if (
        shutil.which("chattr") is None
        or subprocess.run(["chattr", "+i", str(probe)], capture_output=True).returncode
    ):
        pytest.skip("chattr +i (immutable files) is not available on this filesystem")
    _chattr(probe, "-i")

    @contextmanager
    def dead(path: Path) -> Iterator[None]:
        _chattr(path, "+i")
        try:
            yield
        finally:
            _chattr(path, "-i")

    return dead
