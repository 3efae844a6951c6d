"""The worker as a child process, and what it says on /metrics.

`replay-ingest run`, the end-to-end tests and the benchmarks all start their workers
through :class:`WorkerProcess` and read their counters through :func:`scrape`, so a
worker is started, awaited, stopped (by the PID we started) and read in one way only.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from config.settings import Settings, load_settings, read_admin_key
from replay_ingest.localstack import stop_process, wait_for_port

WORKER_COMMAND = (sys.executable, "-m", "replay_ingest", "worker")


@dataclass(frozen=True)
class Sample:
    """One exposed sample: its name (`_total`, `_bucket`... included), labels and value."""

    name: str
    labels: Mapping[str, str]
    value: float

    @property
    def key(self) -> str:
        """The sample as exposed: `name{label="value",...}` (just `name` without labels)."""
        if not self.labels:
            return self.name
        escaped = (_escape(v) for v in self.labels.values())
        pairs = ",".join(f'{k}="{v}"' for k, v in zip(self.labels, escaped, strict=True))
        return f"{self.name}{{{pairs}}}"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


class Metrics(Mapping[str, float]):
    """One scrape: the samples keyed as exposed, and sums over them by name and labels.

    Parsed by prometheus_client's own parser, so label values with commas, quotes or
    braces read back as the worker wrote them."""

    def __init__(self, samples: Iterable[Sample] = ()) -> None:
        self.samples = tuple(samples)
        self._values = {sample.key: sample.value for sample in self.samples}

    @classmethod
    def parse(cls, text: str) -> Metrics:
        """Samples of a Prometheus text exposition."""
        return cls(
            Sample(s.name, dict(s.labels), float(s.value))
            for family in text_string_to_metric_families(text)
            for s in family.samples
        )

    def total(self, name: str, **labels: str) -> float:
        """Sum of the samples called `name` whose labels include `labels` (0 if none)."""
        return sum(
            s.value
            for s in self.samples
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
        )

    def __getitem__(self, key: str) -> float:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


def scrape(host: str, port: int, timeout: float = 5.0) -> Metrics:
    """GET http://host:port/metrics, parsed; OSError when nothing answers in time."""
    with urllib.request.urlopen(f"http://{host}:{port}/metrics", timeout=timeout) as response:
        return Metrics.parse(response.read().decode())


@dataclass
class WorkerProcess:
    """One `replay-ingest worker` child process: its environment (the REPLAY_* variables
    say where it serves), its log, and the process itself once started. It runs in its
    own session, so a terminal's signals reach only whoever started it, who stops it."""

    env: dict[str, str]
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0

    @property
    def settings(self) -> Settings:
        """Read from `env` each time: a test may change it between two starts."""
        return load_settings(self.env)

    @property
    def web_port(self) -> int:
        return self.settings.web_port

    @property
    def metrics_port(self) -> int:
        return self.settings.metrics_port

    def start(self, timeout: float = 60) -> WorkerProcess:
        """Start it, appending to the log; return once /metrics and the web server listen.
        If it exits or is interrupted first, it is stopped and the error raised."""
        self.starts += 1
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            log.write(f"\n===== start {self.starts} =====\n".encode())
            log.flush()
            self.proc = subprocess.Popen(
                WORKER_COMMAND,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def _wait_ready(self, timeout: float) -> None:
        settings, deadline = self.settings, time.monotonic() + timeout
        for host, port in (
            (settings.metrics_host, settings.metrics_port),
            (settings.web_host, settings.web_port),
        ):
            wait_for_port(host, port, max(0.0, deadline - time.monotonic()), self.proc)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 30) -> None:
        """SIGTERM (the worker commits and closes), SIGKILL if it lingers past `timeout`."""
        if self.proc is not None:
            stop_process(self.proc, timeout)

    def kill9(self) -> None:
        """SIGKILL, as a crash: no commit, no close."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def metrics(self) -> Metrics:
        settings = self.settings
        return scrape(settings.metrics_host, settings.metrics_port)

    def metric(self, name: str, **labels: str) -> float:
        """Sum of the samples of `name` whose labels include `labels`."""
        return self.metrics().total(name, **labels)

    def sql(self, query: str, timeout: float = 60) -> list[dict[str, Any]]:
        """Rows of a read-only query through the worker's /api/sql, with its admin key: the
        worker owns its chDB directory, which no second process can open meanwhile."""
        settings = self.settings
        request = urllib.request.Request(
            f"http://{settings.web_host}:{settings.web_port}/api/sql",
            data=query.encode(),
            method="POST",
            headers={"Authorization": f"Bearer {read_admin_key(settings)}"},
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            answer = json.loads(response.read())
        return [dict(zip(answer["columns"], row, strict=True)) for row in answer["rows"]]

    def log_tail(self, lines: int = 60) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
