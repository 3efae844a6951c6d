"""The capture endpoint as the tests meet it: `replay-ingest capture` started as a child
process on a free port (stopped by its PID), plain HTTP calls to it, and the bodies
posthog-js and plain rrweb send, in each encoding posthog-js uses."""

from __future__ import annotations

import gzip
import json
import os
import random
import string
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pybase64

from replay_ingest.localstack import Broker, free_port, stop_process, wait_for_port
from replay_ingest.worker_process import Metrics, scrape
from tests.builders import TS
from tests.stack import TEAMS, wait_until

CAPTURE_COMMAND = (sys.executable, "-m", "replay_ingest", "capture")


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class CaptureServer:
    """One `replay-ingest capture` process, started by `start_capture`."""

    proc: subprocess.Popen[bytes]
    port: int
    log_path: Path
    teams: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def request(self, method: str, path: str, body: bytes | None = None, **headers: str) -> Answer:
        """One HTTP call; any status comes back as an Answer (none raises)."""
        named = {name.replace("_", "-"): value for name, value in headers.items()}
        call = urllib.request.Request(self.url + path, body, named, method=method)
        try:
            with urllib.request.urlopen(call, timeout=30) as response:
                return Answer(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Answer(error.code, dict(error.headers), error.read())

    def post(self, path: str, body: bytes, **headers: str) -> Answer:
        return self.request("POST", path, body, **headers)

    def metrics(self) -> Metrics:
        return scrape("127.0.0.1", self.port)

    def stop(self) -> None:
        stop_process(self.proc)

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])


def start_capture(
    broker: Broker, tmp_path: Path, wait_for_kafka: bool = True, **overrides: str
) -> CaptureServer:
    """`replay-ingest capture` on a free port, for the teams of tests.stack.TEAMS, once
    it listens and (unless told not to wait) its producer is connected; `overrides` are
    REPLAY_* settings (lower case, without the prefix)."""
    teams = tmp_path / "capture-teams.json"
    teams.write_text(json.dumps(TEAMS))
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    env |= {
        "REPLAY_BROKER_URL": broker.url,
        "REPLAY_CAPTURE_PORT": str(port),
        "REPLAY_TEAMS_FILE": str(teams),
        "REPLAY_DATA_DIR": str(tmp_path / "capture-data"),
    }
    env |= {f"REPLAY_{name.upper()}": value for name, value in overrides.items()}
    log_path = tmp_path / f"capture-{port}.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            CAPTURE_COMMAND, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = CaptureServer(proc, port, log_path, TEAMS)
    try:
        wait_for_port("127.0.0.1", port, 60, proc)
        if wait_for_kafka:
            wait_until(
                lambda: server.metrics().total("replay_capture_kafka_connected"),
                60,
                f"capture connected to Kafka ({log_path})",
            )
    except BaseException:
        stop_process(proc)
        raise
    return server


# -- what clients send ----------------------------------------------------------------


def rrweb_events(count: int, start: int = TS, pad: int = 0) -> list[dict[str, Any]]:
    """A meta event, a full snapshot (with `pad` characters of text that gzip cannot
    shrink much), then clicks."""
    text = "".join(random.Random(start).choices(string.ascii_letters, k=pad))
    events: list[dict[str, Any]] = [
        {"type": 4, "timestamp": start, "data": {"href": "https://example.com/", "width": 800}},
        {"type": 2, "timestamp": start + 1, "data": {"node": {"id": 1, "text": text}}},
    ]
    for index in range(max(0, count - 2)):
        data = {"source": 2, "type": 2, "id": index, "x": index, "y": 5, "note": 'say "hi"'}
        events.append({"type": 3, "timestamp": start + 10 + index, "data": data})
    return events[:count]


def snapshot_event(
    events: list[dict[str, Any]],
    *,
    token: str = "token-1",
    session_id: str = "session-1",
    window_id: str = "window-1",
    distinct_id: str = "user-1",
    event_uuid: str | None = None,
) -> dict[str, Any]:
    """A `$snapshot` event as posthog-js 1.449 posts it to /s/."""
    return {
        "uuid": event_uuid or str(uuid.uuid4()),
        "event": "$snapshot",
        "properties": {
            "$snapshot_data": events,
            "$session_id": session_id,
            "$window_id": window_id,
            "$snapshot_bytes": len(json.dumps(events)),
            "$lib": "web",
            "$lib_version": "1.449.2",
            "$snapshot_host": "example.com",
            "token": token,
            "distinct_id": distinct_id,
        },
        "timestamp": "2026-10-26T08:53:20.000Z",
        "sent_at": "2026-10-26T08:53:20.100Z",
    }


def other_event(name: str = "$pageview", token: str = "token-1") -> dict[str, Any]:
    return {
        "uuid": str(uuid.uuid4()),
        "event": name,
        "properties": {"token": token, "distinct_id": "user-1", "$current_url": "https://e/"},
    }


ENCODINGS = ("gzip-js", "base64", "none")


def encoded(payload: Any, encoding: str) -> tuple[bytes, dict[str, str], str]:
    """(body, headers, query) as posthog-js sends `payload` in `encoding`."""
    text = json.dumps(payload).encode()
    if encoding == "gzip-js":
        return gzip.compress(text), {"Content-Type": "text/plain"}, ""
    if encoding == "base64":
        data = urllib.parse.quote(pybase64.b64encode(text).decode(), safe="")
        form = {"Content-Type": "application/x-www-form-urlencoded"}
        return f"data={data}".encode(), form, "?compression=base64"
    return text, {"Content-Type": "application/json"}, ""
