"""Fixtures that start the real parts per test (tests/stack.py holds them), and the tier
marks: a test is `unit` or `e2e` by the directory it lives in, so `pytest tests/unit` and
`pytest -m e2e` select what they say."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest

from replay_ingest.localstack import (
    Broker,
    create_topics,
    free_port,
    spawn,
    start_broker,
    stop_process,
)
from tests.stack import CAPTURE, PARTITIONS, S3Server, Stack

TIERS = ("unit", "e2e", "lint")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(tier)


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
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    if report.when == "call":
        item.rep_call = report  # type: ignore[attr-defined]
