"""`replay-ingest run` stops everything it started, whichever signal asks it to: Ctrl-C
(SIGINT), a service manager (SIGTERM) or a closed terminal (SIGHUP); what it wrote
stays, for `replay-ingest sql` to read with nothing running. While it runs, it shows a
share link to its newest session that opens that session."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from replay_ingest.localstack import free_port
from replay_ingest.worker_process import scrape
from sinks.clickhouse.schema import SNAPSHOT_TABLE
from tests.stack import wait_until

Started = dict[int, str]  # pid -> its start time (/proc/<pid>/stat), against PID reuse


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name; None once it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return text.rpartition(")")[2].split()  # the name may hold spaces and parentheses


def descendants(root: int) -> Started:
    """Every live process under `root` (children of children too), by scanning /proc:
    this kernel has no /proc/<pid>/task/*/children."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents.setdefault(int(fields[1]), []).append(int(entry.name))
    found: Started = {}
    todo = [root]
    while todo:
        for child in parents.get(todo.pop(), []):
            if (fields := _stat(child)) is not None and fields[0] != "Z":
                found[child] = fields[19]
                todo.append(child)
    return found


def alive(started: Started) -> list[int]:
    """Those of `started` still running as the same process (not a zombie, not a reuse)."""
    return [
        pid
        for pid, since in started.items()
        if (fields := _stat(pid)) is not None and fields[0] != "Z" and fields[19] == since
    ]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


COUNT = f"SELECT count() AS n FROM {SNAPSHOT_TABLE} FINAL"
SHARE_LINK = re.compile(r"share link: http://127\.0\.0\.1:(\d+)/replay/(\d+)/([\w-]+)\?(token=\S+)")


def shared_summary(link: re.Match[str]) -> dict[str, object]:
    """The summary a share link of the run opens, read with the link's token alone."""
    port, team, session, query = link.groups()
    url = f"http://127.0.0.1:{port}/api/teams/{team}/sessions/{session}?{query}"
    with urllib.request.urlopen(url, timeout=30) as response:
        return dict(json.loads(response.read()))


def written(metrics_port: int) -> float:
    """Rows the run's worker has durably inserted (0 while it does not answer)."""
    try:
        return scrape("127.0.0.1", metrics_port, timeout=2).total(
            "replay_clickhouse_rows_total", table=SNAPSHOT_TABLE
        )
    except OSError:
        return 0.0


def stored(env: dict[str, str]) -> int:
    """Rows of the run as `replay-ingest sql` reads them: through the worker while it
    runs, from the data directory (chDB) once nothing does."""
    out = subprocess.run(
        [sys.executable, "-m", "replay_ingest", "sql", "--format", "jsonl", COUNT],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return int(json.loads(out.stdout)["n"])


@pytest.fixture
def ports() -> dict[str, int]:
    return {name: free_port() for name in ("broker", "s3", "metrics", "web", "capture")}


@dataclass
class Run:
    """A `replay-ingest run` we started, and the processes seen under it."""

    proc: subprocess.Popen[bytes]
    log: Path
    env: dict[str, str]
    children: Started = field(default_factory=dict)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


@pytest.fixture
def run(tmp_path: Path, ports: dict[str, int]) -> Iterator[Run]:
    """`replay-ingest run` in its own session on free ports, its output in run.log.
    Whatever a failed test leaves behind of it is killed afterwards, by PID."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env |= {
        "REPLAY_BROKER_URL": f"kafka://127.0.0.1:{ports['broker']}",
        "REPLAY_S3_ENDPOINT_URL": f"http://127.0.0.1:{ports['s3']}",
        "REPLAY_METRICS_PORT": str(ports["metrics"]),
        "REPLAY_WEB_PORT": str(ports["web"]),
        "REPLAY_CAPTURE_PORT": str(ports["capture"]),
        "REPLAY_DATA_DIR": str(tmp_path / "data"),
    }
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "replay_ingest", "run", "--rate", "50"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    started = Run(proc, log, env)
    yield started
    started.children |= descendants(proc.pid)  # if the test failed before looking
    leftovers = alive(started.children) + ([proc.pid] if proc.poll() is None else [])
    for pid in leftovers:
        os.kill(pid, signal.SIGKILL)
    proc.wait(30)
    if leftovers:
        print(f"killed {leftovers}; the run's output:\n{started.output()}")


@pytest.mark.parametrize(
    "signum", [signal.SIGHUP, signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name
)
def test_run_stops_all_it_started_on_a_signal_and_its_rows_stay(
    run: Run, ports: dict[str, int], signum: signal.Signals
) -> None:
    wait_until(lambda: written(ports["metrics"]), 180, "rows written from the feed")
    rows = stored(run.env)
    assert rows > 0
    run.children |= descendants(run.proc.pid)
    assert len(run.children) >= 4, f"Tansu, SeaweedFS, worker, capture: {run.children}"
    assert all(listening(port) for port in ports.values())
    link = wait_until(lambda: SHARE_LINK.search(run.output()), 90, "a share link printed")
    assert int(link[1]) == ports["web"]
    assert shared_summary(link)["session_id"] == link[3]

    os.kill(run.proc.pid, signum)

    assert run.proc.wait(90) == 0, run.output()
    wait_until(lambda: not alive(run.children), 30, "every process of the run gone")
    busy = [name for name, port in ports.items() if listening(port)]
    assert not busy, f"still listening: {busy}"
    assert f"{signum.name}: stopping" in run.output()
    assert "| rows " in run.output(), "the live line of counts"
    assert stored(run.env) >= rows  # what was durable before the signal stays
