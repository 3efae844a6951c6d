"""`replay-ingest run`: the embedded local stack in one command.

A Tansu broker, SeaweedFS (the S3 cold tier), the worker (on chDB under
REPLAY_DATA_DIR) and the capture endpoint (with its demo page, whose rrweb scripts are
installed from npm into the data directory in the background when npm exists) as child
processes, fed by the generator at a modest rate from a thread, with a live line of
counts read from the worker's own /metrics and, above it, a share link to the newest
session's player page (printed when that session changes, and again every ~30 s; the
page's rrweb-player is installed from npm in the background when npm exists).

The children run in their own sessions, so closing the terminal signals only this
process: SIGINT (Ctrl-C), SIGTERM and SIGHUP alike stop the feed, then the capture endpoint (and
an npm install still running), then the worker, then SeaweedFS, then the broker, each
by the PID we started. ClickHouse and S3 data persist
in the data directory; Tansu keeps everything in memory, so the Kafka side (and the
worker's table state that refers to its offsets) starts afresh on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from types import FrameType
from urllib.parse import urlsplit

from api.share import share_url, sign
from config.settings import Settings, SettingsError, ensure_share_key, mask_url
from config.teams import load_registry
from replay_ingest.generator.capture import generate
from replay_ingest.generator.sessions import GenerateOptions
from replay_ingest.localstack import (
    create_topics,
    spawn,
    start_broker,
    start_js_install,
    start_s3,
    stop_process,
)
from replay_ingest.produce import produce_lines
from replay_ingest.worker_process import WorkerProcess
from sinks.clickhouse.player import newest_session
from streams.topics import CAPTURE_TOPIC, DLQ_OF, ITEMS_TOPIC

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
LINK_CHECK_SECONDS = 10.0  # between two looks for a newer session
LINK_REPEAT_SECONDS = 30.0  # between two prints of the same link

_STATUS = {
    "consumed": "replay_messages_consumed_total",
    "batches": "replay_snapshot_batches_total",
    "rows": "replay_clickhouse_rows_total",
    "dlq": "replay_dlq_messages_total",
}

# SeaweedFS without identities accepts any credentials; boto3 wants some all the same
_AWS_DEFAULTS = {
    "AWS_ACCESS_KEY_ID": "replay",
    "AWS_SECRET_ACCESS_KEY": "replay",
    "AWS_DEFAULT_REGION": "us-east-1",
}


class Interrupted(BaseException):
    """One of STOP_SIGNALS arrived: unwind, stopping whatever was started."""


def _on_stop_signal(signum: int, frame: FrameType | None) -> None:
    _hold_stop_signals()  # the stop that follows runs to its end
    raise Interrupted(signal.Signals(signum).name)


def _hold_stop_signals() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, signal.SIG_IGN)


def _say(text: str, end: str = "\n") -> None:
    """Write to stderr, if it is still there: after SIGHUP the terminal may be gone, and
    a failed status line must not keep the children from being stopped."""
    with contextlib.suppress(OSError, ValueError):
        sys.stderr.write(text + end)
        sys.stderr.flush()


class Feed:
    """Generated sessions, recent as if live, produced at `rate` from a thread until
    stopped; `count` is how many messages it has handed to the producer."""

    def __init__(self, settings: Settings, rate: float, seed: int) -> None:
        self.bootstrap, self.rate, self.seed = settings.bootstrap, rate, seed
        self.count = 0
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._run, name="feed", daemon=True)

    def start(self) -> Feed:
        self.thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        """The generator ends at its next message; the producer flushes and closes."""
        self.stopping.set()
        self.thread.join(timeout)

    def _run(self) -> None:
        produce = produce_lines(
            self.bootstrap, CAPTURE_TOPIC, self._lines(), rate=self.rate, progress=False
        )
        asyncio.run(produce)

    def _lines(self) -> Iterator[bytes]:
        round_ = 0
        while not self.stopping.is_set():
            opts = GenerateOptions(
                sessions=5,
                seed=self.seed + round_,
                start=datetime.now(UTC) - timedelta(hours=1),
                spread=timedelta(hours=1),
            )
            for messages, _ in generate(opts):
                for message in messages:
                    if self.stopping.is_set():
                        return
                    self.count += 1
                    yield message
            round_ += 1


def _status_line(worker: WorkerProcess, fed: int) -> str:
    try:
        metrics = worker.metrics()
    except OSError:
        return f"fed {fed} messages; worker starting..."
    parts = [f"{label} {metrics.total(name):.0f}" for label, name in _STATUS.items()]
    return f"fed {fed} | " + " | ".join(parts)


class NewestLink:
    """The share link of the run's newest session (by start time, any team of the
    registry), read through the worker's /api/sql (the worker owns chDB). `due` gives
    the line to print when that session changed or the last print is ~30 s old, else
    None: the link would drown the line of counts if printed every tick."""

    def __init__(self, settings: Settings, worker: WorkerProcess) -> None:
        self.settings, self.worker = settings, worker
        try:
            self.teams = list(load_registry(settings.teams_file).by_id)
        except SettingsError:
            self.teams = []  # the worker exits saying why; no link meanwhile
        self.session: tuple[int, str] | None = None
        self.url = ""
        self.checked_at = self.shown_at = -LINK_REPEAT_SECONDS

    def due(self, now: float) -> str | None:
        if now - self.checked_at < LINK_CHECK_SECONDS:
            return None
        self.checked_at = now
        newest = self._newest()
        if newest is None or (newest == self.session and now - self.shown_at < LINK_REPEAT_SECONDS):
            return None
        if newest != self.session:
            self.session, self.url = newest, self._link(*newest)
        self.shown_at = now
        return f"newest session, share link: {self.url}"

    def _newest(self) -> tuple[int, str] | None:
        """(team_id, session_id) of the newest session; None before any, or while the
        worker does not answer (a brief timeout: the line of counts must keep going)."""
        if not self.teams:
            return None
        try:
            rows = self.worker.sql(newest_session(self.teams).inline(), timeout=5)
            return (int(rows[0]["team_id"]), str(rows[0]["session_id"])) if rows else None
        except (OSError, ValueError, KeyError):
            return None

    def _link(self, team: int, session: str) -> str:
        expires_at = int(time.time()) + self.settings.share_expires_seconds
        token = sign(ensure_share_key(self.settings).encode(), team, session, expires_at)
        return share_url(self.settings.base_url, team, session, token)


def _local_port(url: str, what: str, form: str) -> int | None:
    """The port of a 127.0.0.1 URL; None (with the reason on stderr) for any other."""
    parts = urlsplit(url)
    if parts.hostname in ("127.0.0.1", "localhost") and parts.port is not None:
        return parts.port
    _say(f"replay-ingest run starts its own {what}: {form}")
    return None


def run_local_stack(settings: Settings, rate: float, seed: int) -> int:
    """Start the stack, show its counts until a stop signal or the worker exits; 0 when
    stopped by a signal, 1 when the worker exited, 2 for a configuration it cannot run."""
    broker_port = _local_port(
        settings.broker_url.split(";")[0],
        "broker",
        "REPLAY_BROKER_URL must be kafka://127.0.0.1:PORT",
    )
    s3_port = _local_port(
        settings.s3_endpoint_url,
        "S3 (SeaweedFS)",
        "REPLAY_S3_ENDPOINT_URL must be http://127.0.0.1:PORT",
    )
    capture_ok = _local_port(
        f"http://{settings.capture_host}:{settings.capture_port}",
        "capture endpoint",
        "REPLAY_CAPTURE_HOST must be 127.0.0.1",
    )
    if broker_port is None or s3_port is None or capture_ok is None:
        return 2
    previous = {signum: signal.signal(signum, _on_stop_signal) for signum in STOP_SIGNALS}
    try:
        with contextlib.ExitStack() as started:  # unwinds last started, first stopped
            try:
                return _serve(settings, broker_port, s3_port, rate, seed, started)
            except Interrupted as stop:
                _say(f"\n{stop}: stopping...")
                return 0
            finally:
                _hold_stop_signals()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _serve(
    settings: Settings,
    broker_port: int,
    s3_port: int,
    rate: float,
    seed: int,
    started: contextlib.ExitStack,
) -> int:
    """Start each part, registering its stop as soon as it runs; then show the counts."""
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(data / "faust", ignore_errors=True)  # its offsets were Tansu's, now gone
    broker = start_broker(broker_port, data / "tansu.log")
    started.callback(broker.stop)
    seaweed = start_s3(s3_port, data / "seaweedfs", data / "s3.log")
    started.callback(stop_process, seaweed)
    topics = [CAPTURE_TOPIC, ITEMS_TOPIC, DLQ_OF[ITEMS_TOPIC]]
    asyncio.run(create_topics(broker.bootstrap, topics, settings.partitions))
    worker = WorkerProcess(_AWS_DEFAULTS | dict(os.environ), data / "worker.log")
    started.callback(worker.stop)
    worker.start()
    _start_player_install(settings, started)
    _start_capture(settings, started)
    feed = Feed(settings, rate, seed)
    started.callback(feed.stop)
    feed.start()
    _say(
        f"local stack up: broker {mask_url(settings.broker_url)}, "
        f"ClickHouse {mask_url(settings.clickhouse_url)}, "
        f"worker log {worker.log_path}.\n"
        f"capture endpoint and demo page: "
        f"http://{settings.capture_host}:{settings.capture_port}/ . Ctrl-C stops."
    )
    link = NewestLink(settings, worker)
    while worker.running():
        shown = link.due(time.monotonic())
        if shown is not None:
            _say("\r" + shown.ljust(100))
        _say("\r" + _status_line(worker, feed.count).ljust(100), end="")
        time.sleep(1)
    _say(f"\nworker exited with {worker.proc.returncode if worker.proc else None}")
    return 1


def _start_player_install(settings: Settings, started: contextlib.ExitStack) -> None:
    """`replay-ingest player install` in the background when npm is there and the
    player page's assets are missing (the page says how to get them until then)."""
    from replay_ingest.commands.player import installed

    if shutil.which("npm") is None or installed(settings.player_dir):
        return
    command = [sys.executable, "-m", "replay_ingest", "player", "install"]
    with open(settings.data_dir / "npm.log", "ab") as out:
        install = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    started.callback(_stop_group, install)


def _stop_group(proc: subprocess.Popen) -> None:
    """SIGTERM the process group we started (the install and the npm it runs), then
    SIGKILL if it lingers: its leader's PID is the group's id."""
    if proc.poll() is not None:
        return
    for stop in (signal.SIGTERM, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, stop)
        try:
            proc.wait(20)
            return
        except subprocess.TimeoutExpired:
            continue


def _start_capture(settings: Settings, started: contextlib.ExitStack) -> None:
    """The capture endpoint, and (unless REPLAY_CAPTURE_NODE_MODULES names an install of
    its own) the demo page's scripts installed from npm in the background."""
    data = settings.data_dir
    if settings.capture_node_modules is None:
        npm = start_js_install(settings.capture_js_dir, data / "npm.log")
        if npm is not None:
            started.callback(stop_process, npm)
    command = [sys.executable, "-m", "replay_ingest", "capture"]
    capture = spawn(command, settings.capture_port, data / "capture.log")
    started.callback(stop_process, capture)
