"""Share links on the real worker: the read key mints them (API and CLI), a link opens
its own session's summary and nothing else, and every refused token is one 403 with
its reason counted. One broker and one worker (on chDB) for the module."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import stat
import time
from collections.abc import Iterator
from urllib.parse import quote, urlsplit

import pytest

from api.share import sign
from config.settings import load_settings
from replay_ingest.localstack import create_topics, free_port, start_broker
from tests import builders
from tests.checks import replay
from tests.stack import CAPTURE, PARTITIONS, WINDOWS, Stack, WorkerProcess, wait_until

REFUSED = {"error": "share link is forged, expired or for another session"}
UNAUTHORIZED = {"error": "missing or invalid read key for this team"}
WEEK = 7 * 86400


@pytest.fixture(scope="module")
def worker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerProcess]:
    """A worker holding sessions s-one and s-two of team 1, and an s-one of team 2."""
    root = tmp_path_factory.mktemp("share")
    broker = start_broker(free_port(), root / "tansu.log")
    asyncio.run(create_topics(broker.bootstrap, [CAPTURE], PARTITIONS))
    started = Stack(broker, root).worker(**WINDOWS).start()
    try:
        Stack(broker, root).produce(
            [
                builders.capture(session_id="s-one"),
                builders.capture(session_id="s-two"),
                builders.capture(token="token-2", team_id=2, session_id="s-one"),
            ]
        )
        wait_until(
            lambda: started.scalar("SELECT count() FROM session_replay_summary") == 3,
            90,
            "three sessions summarised",
        )
        yield started
    except BaseException:
        print(started.log_tail())
        raise
    finally:
        started.stop()
        broker.stop()


def call(
    worker: WorkerProcess, path: str, key: str | None = None, method: str = "GET"
) -> tuple[int, bytes]:
    """One request with the path sent exactly as given; (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=60)
    try:
        headers = {} if key is None else {"Authorization": f"Bearer {key}"}
        connection.request(method, path, headers=headers)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def share_key(worker: WorkerProcess) -> bytes:
    """The key the worker generated into its data directory (no REPLAY_SHARE_KEY)."""
    return load_settings(worker.env).share_key_path.read_text().strip().encode()


def summary_path(url: str) -> str:
    """The summary route of the session a share link opens, with the link's token."""
    parts = urlsplit(url)
    match = re.fullmatch(r"/replay/(\d+)/([\w-]+)", parts.path)
    assert match, url
    return f"/api/teams/{match[1]}/sessions/{match[2]}?{parts.query}"


def refusals(worker: WorkerProcess) -> dict[str, float]:
    metrics = worker.metrics()
    reasons = ("forged", "expired", "other_session", "malformed")
    return {r: metrics.total("replay_share_refusals_total", reason=r) for r in reasons}


def test_the_read_key_mints_a_link_that_opens_the_summary(worker: WorkerProcess) -> None:
    before = time.time()
    status, body = call(worker, "/api/teams/1/sessions/s-one/share", "read-key-1")
    assert status == 200, body
    link = json.loads(body)
    assert set(link) == {"url", "token", "expires_at"}
    base = f"http://127.0.0.1:{worker.web_port}"
    assert link["url"] == f"{base}/replay/1/s-one?token={quote(link['token'], safe='')}"
    assert before + WEEK - 1 <= link["expires_at"] <= time.time() + WEEK + 1
    status, shared = call(worker, summary_path(link["url"]))
    assert status == 200 and json.loads(shared)["session_id"] == "s-one"
    assert shared == call(worker, "/api/teams/1/sessions/s-one", "read-key-1")[1]
    status, body = call(
        worker, "/api/teams/1/sessions/s-two/share?expires=90s", "read-key-1", "POST"
    )
    assert status == 200 and json.loads(body)["expires_at"] <= time.time() + 91


@pytest.mark.parametrize(
    ("path", "key", "status"),
    [
        ("/api/teams/1/sessions/nope/share", "read-key-1", 404),
        ("/api/teams/2/sessions/s-two/share", "read-key-2", 404),  # team 1's session
        ("/api/teams/1/sessions/s-one/share", "read-key-2", 401),
        ("/api/teams/1/sessions/s-one/share", None, 401),
        ("/api/teams/1/sessions/bad..id/share", "read-key-1", 400),
        ("/api/teams/abc/sessions/s-one/share", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=0", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=366d", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=1y", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=-5", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=%C2%B2", "read-key-1", 400),
        ("/api/teams/1/sessions/s-one/share?expires=" + "9" * 5000, "read-key-1", 400),
    ],
    ids=lambda p: str(p)[:50],
)
def test_the_share_api_refuses(
    worker: WorkerProcess, path: str, key: str | None, status: int
) -> None:
    got, body = call(worker, path, key)
    assert got == status, body[:200]
    if status == 400 and "expires" in path:
        assert "90s, 15m, 12h, 7d, 2w" in json.loads(body)["error"]


def test_a_share_link_mints_no_more_links_and_opens_no_other_route(
    worker: WorkerProcess,
) -> None:
    token = quote(sign(share_key(worker), 1, "s-one", int(time.time()) + 600), safe="")
    assert call(worker, f"/api/teams/1/sessions/s-one?token={token}")[0] == 200
    for route in ("share", "snapshots", "network"):
        status, body = call(worker, f"/api/teams/1/sessions/s-one/{route}?token={token}")
        assert (status, json.loads(body)) == (401, UNAUTHORIZED), route
    assert call(worker, f"/api/teams/1/sessions?token={token}")[0] == 401


def test_the_summary_opens_only_with_a_token_for_it(worker: WorkerProcess) -> None:
    key, now = share_key(worker), int(time.time())
    good = sign(key, 1, "s-one", now + 600)
    path = "/api/teams/1/sessions/s-one"
    refused = {
        "forged": [
            good[:-1] + ("A" if good[-1] != "A" else "B"),
            sign(b"another key", 1, "s-one", now + 600),
            good.replace(f".{now + 600}.", f".{now + 6000}."),
        ],
        "expired": [sign(key, 1, "s-one", now - 1)],
        "other_session": [sign(key, 1, "s-two", now + 600), sign(key, 2, "s-one", now + 600)],
        "malformed": ["", "A" * 8000, "%C3%A9", good + "." * 600],
    }
    before = refusals(worker)
    assert call(worker, f"{path}?token={quote(good, safe='')}")[0] == 200
    for reason, tokens in refused.items():
        for token in tokens:
            sent = token if token.startswith("%") else quote(token, safe="")
            status, body = call(worker, f"{path}?token={sent}")
            assert (status, json.loads(body)) == (403, REFUSED), (reason, token[:80])
    after = refusals(worker)
    assert {r: after[r] - before[r] for r in after} == {r: len(t) for r, t in refused.items()}
    # a request line over 8190 bytes is refused by aiohttp before any view: 400, no 500
    status, body = call(worker, f"{path}?token={'A' * 10_000}")
    assert status == 400, body[:100]
    # neither key nor token, or another team's key: 401 as before
    for key_sent in (None, "read-key-2", "wrong"):
        status, body = call(worker, path, key_sent)
        assert (status, json.loads(body)) == (401, UNAUTHORIZED)
    # a team's read key still opens it, a refused token alongside notwithstanding
    assert call(worker, f"{path}?token=forged", "read-key-1")[0] == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/teams/abc/sessions/s-one",
        "/api/teams/0/sessions/s-one",
        "/api/teams/" + "1" * 30 + "/sessions/s-one",
        "/api/teams/1/sessions/bad..id",
        "/api/teams/1/sessions/a'b",
        "/api/teams/1/sessions/" + "a" * 201,
    ],
    ids=lambda p: p[:50],
)
def test_malformed_ids_are_400_with_a_token_too(worker: WorkerProcess, path: str) -> None:
    token = quote(sign(share_key(worker), 1, "s-one", int(time.time()) + 600), safe="")
    assert call(worker, f"{path}?token={token}")[0] == 400
    assert call(worker, path)[0] == 400  # before any key is looked at


def test_the_cli_prints_a_link_that_opens_the_session(worker: WorkerProcess) -> None:
    assert "REPLAY_SHARE_KEY" not in worker.env
    path = load_settings(worker.env).share_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) >= 32
    shared = replay(
        worker.env, "sessions", "share", "--team", "1", "--session", "s-two", "--expires", "1h"
    )
    assert shared.returncode == 0, shared.stderr
    url = shared.stdout.splitlines()[-1]
    assert url.startswith(f"http://127.0.0.1:{worker.web_port}/replay/1/s-two?token=")
    status, body = call(worker, summary_path(url))
    assert status == 200 and json.loads(body)["session_id"] == "s-two"
    # signed with another key than the worker's: the worker refuses the link
    other = replay(
        worker.env | {"REPLAY_SHARE_KEY": "x" * 32}, "sessions", "share", "--team", "1",
        "--session", "s-two",
    )  # fmt: skip
    assert other.returncode == 0, other.stderr
    assert call(worker, summary_path(other.stdout.splitlines()[-1]))[0] == 403


@pytest.mark.parametrize(
    ("argv", "code", "error"),
    [
        (["--team", "1", "--session", "nope"], 1, "error: no such session"),
        (["--team", "2", "--session", "s-two"], 1, "error: no such session"),
        (["--team", "1", "--session", "bad..id"], 2, "session_id is not a valid id"),
        (["--team", "1", "--session", "s-one", "--expires", "2y"], 2, "at most 365 days"),
    ],
)
def test_the_cli_refuses_what_no_link_can_open(
    worker: WorkerProcess, argv: list[str], code: int, error: str
) -> None:
    out = replay(worker.env, "sessions", "share", *argv)
    assert out.returncode == code and error in out.stderr, out.stderr
    assert "/replay/" not in out.stdout
