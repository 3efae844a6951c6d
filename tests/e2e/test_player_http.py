"""The player page's routes over plain HTTP on a real worker (the browser tests are in
tests/e2e/browser/test_player.py): what the page loads, the page without its assets,
hostile requests, the live stream and its bound."""

from __future__ import annotations

import http.client
import json
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from streams.topics import ITEMS_TOPIC
from tests.builders import items_value, page_events, text_added
from tests.stack import WINDOWS, Stack, WorkerProcess, wait_until

TEAM, READ_KEY = 1, "read-key-1"
AUTH = {"Authorization": f"Bearer {READ_KEY}"}


@pytest.fixture
def player_worker(stack: Stack, request: pytest.FixtureRequest) -> WorkerProcess:
    """A worker whose player assets folder is empty (nothing installed), live streams
    polled twice a second, at most the parameter's count of them (default 2)."""
    stack.create_topics(ITEMS_TOPIC)
    empty = stack.tmp_path / "no-player"
    empty.mkdir()
    streams = str(getattr(request, "param", 2))
    settings = {"player_assets_dir": str(empty), "live_poll_seconds": "0.5"}
    return stack.worker(**WINDOWS, **settings, max_live_streams=streams).start()


def fetch(worker: WorkerProcess, path: str, headers: dict[str, str] | None = None) -> Any:
    """(status, headers, body bytes) of a GET."""
    request = urllib.request.Request(f"http://127.0.0.1:{worker.web_port}{path}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as answer:
            return answer.status, answer.headers, answer.read()
    except urllib.error.HTTPError as error:
        return error.code, error.headers, error.read()


def ingest(stack: Stack, worker: WorkerProcess, events: list[dict[str, Any]]) -> str:
    session = f"s-{uuid.uuid4().hex[:12]}"
    stack.produce([items_value(session_id=session, items=events)], topic=ITEMS_TOPIC)
    query = f"SELECT count() FROM session_recording_events WHERE session_id = '{session}'"
    wait_until(lambda: worker.scalar(query) == 1, 60, "the batch stored")
    return session


def test_page_events_and_manifest(stack: Stack, player_worker: WorkerProcess) -> None:
    worker = player_worker
    events = page_events("Plain page")
    session = ingest(stack, worker, events)
    base = f"/api/teams/{TEAM}/sessions/{session}"

    status, headers, body = fetch(worker, f"/replay/{TEAM}/{session}", AUTH)
    assert status == 200 and headers["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "no-referrer"
    page = body.decode()
    assert "replay-ingest player install" in page  # the assets are not installed
    assert '<script src="/replay/assets/rrweb-player.js">' not in page
    assert fetch(worker, "/replay/assets/rrweb-player.js")[0] == 404
    status, headers, script = fetch(worker, "/replay/assets/player.js")
    assert status == 200 and headers["Content-Type"].startswith("text/javascript")
    assert b"replayState" in script

    status, _, body = fetch(worker, f"{base}/player", AUTH)
    manifest = json.loads(body)
    assert status == 200 and manifest["gaps"] == [] and manifest["live"] is True
    status, _, body = fetch(worker, f"{base}/events", AUTH)
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert status == 200 and lines == [["window-1", event] for event in events]
    later = events[3]["timestamp"]
    _, _, body = fetch(worker, f"{base}/events?after={later}", AUTH)
    assert [json.loads(line)[1] for line in body.decode().splitlines()] == events[3:]


@pytest.mark.parametrize(
    "path, status",
    [
        ("/replay/1/no-such-session", 200),  # the page loads, and says so itself
        ("/api/teams/1/sessions/no-such-session/player", 404),
        ("/api/teams/1/sessions/no-such-session/events", 404),
        ("/api/teams/1/sessions/bad%27id/events", 400),
        ("/api/teams/1/sessions/x/events?after=soon", 400),
        ("/api/teams/1/sessions/x/events?after=9999999999999999999999", 400),
        ("/api/teams/1/sessions/x/live?cursor=-1", 400),
        ("/api/teams/99999999999999999999/sessions/x/player", 400),
        ("/replay/assets/..%2F..%2Fconfig%2Fsettings.py", 404),
        ("/replay/assets/player.py", 404),
        ("/replay/assets/", 404),
    ],
)
def test_hostile_requests_get_clear_answers(
    player_worker: WorkerProcess, path: str, status: int
) -> None:
    assert fetch(player_worker, path, AUTH)[0] == status
    assert fetch(player_worker, "/replay/assets/player.css")[0] == 200  # and it goes on


def test_a_token_too_long_or_junk_is_refused_without_a_500(
    player_worker: WorkerProcess,
) -> None:
    for token in ("x" * 5000, "1.1.9999999999.s.%00%ff", urllib.parse.quote("é" * 10)):
        for path in ("/replay/1/s", "/api/teams/1/sessions/s/live"):
            assert fetch(player_worker, f"{path}?token={token}")[0] == 403


class Stream:
    """A live stream (Server-Sent Events) read as the browser's EventSource would."""

    def __init__(self, worker: WorkerProcess, path: str) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=30)
        self.connection.request("GET", path, headers=AUTH)
        self.response = self.connection.getresponse()

    def messages(self) -> Iterator[str]:
        """Each message's data (its `data:` lines joined), as they arrive."""
        data: list[str] = []
        for raw in self.response:
            line = raw.decode().rstrip("\n")
            if line.startswith("data: "):
                data.append(line[len("data: ") :])
            elif line == "" and data:
                yield "\n".join(data)
                data = []

    def close(self) -> None:
        self.connection.close()


def test_the_live_stream_sends_each_new_batch_once(
    stack: Stack, player_worker: WorkerProcess
) -> None:
    worker = player_worker
    now = int(time.time() * 1000)
    session = ingest(stack, worker, page_events("Live", start=now - 2000))
    _, _, body = fetch(worker, f"/api/teams/{TEAM}/sessions/{session}/player", AUTH)
    cursor = json.loads(body)["live_cursor"]
    stream = Stream(worker, f"/api/teams/{TEAM}/sessions/{session}/live?cursor={cursor}")
    try:
        assert stream.response.status == 200
        assert stream.response.headers["Content-Type"] == "text/event-stream"
        added = text_added("new text", now, 100)
        batch = items_value(session_id=session, items=[added])
        stack.produce([batch, batch], topic=ITEMS_TOPIC)  # the same batch twice
        chunk = json.loads(batch)["uuid"]
        stored = f"SELECT count() FROM session_recording_events WHERE chunk_id = '{chunk}'"
        wait_until(lambda: worker.scalar(stored) >= 1, 60, "the batch stored")
        marker = text_added("after", now + 1, 101)
        stack.produce([items_value(session_id=session, items=[marker])], topic=ITEMS_TOPIC)
        seen: list[Any] = []
        for message in stream.messages():  # (the overlap resends the first batch: the
            seen += [json.loads(line) for line in message.splitlines()]  # page drops it)
            if ["window-1", marker] in seen and ["window-1", added] in seen:
                break  # (the two messages may be written in either order)
        assert seen.count(["window-1", added]) == 1  # sent once although produced twice
        assert seen.count(["window-1", marker]) == 1
    finally:
        stream.close()


@pytest.mark.parametrize("player_worker", [1], indirect=True)
def test_live_streams_past_the_bound_get_503(stack: Stack, player_worker: WorkerProcess) -> None:
    worker = player_worker
    session = ingest(stack, worker, page_events("Bounded"))
    path = f"/api/teams/{TEAM}/sessions/{session}/live?cursor=0"
    held = Stream(worker, path)
    try:
        assert held.response.status == 200
        assert next(held.messages())  # the session's batch, from cursor 0
        assert fetch(worker, path, AUTH)[0] == 503
    finally:
        held.close()
    wait_until(lambda: _opens(worker, path), 30, "a stream once the held one closed")


def _opens(worker: WorkerProcess, path: str) -> bool:
    stream = Stream(worker, path)
    try:
        return stream.response.status == 200
    finally:
        stream.close()
