"""The worker's HTTP surface as the internet sees it: every route without a key, with
another team's key, with oversized and malformed parameters, the SQL probes, Faust's own
views, and the streamed snapshots. One broker and one worker (on chDB) for the module."""

from __future__ import annotations

import asyncio
import http.client
import json
import stat
from collections.abc import Iterator

import pytest

from config.settings import load_settings, read_admin_key
from replay_ingest.localstack import create_topics, free_port, start_broker
from tests import builders
from tests.checks import replay
from tests.stack import CAPTURE, PARTITIONS, TEAMS, WINDOWS, Stack, WorkerProcess, wait_until

BIG_BATCHES = 30  # ~110 KB of events: more than one 64 KiB write of the streamed body
SECRETS = [str(team.get(k)) for team in TEAMS for k in ("token", "read_key") if team.get(k)]


@pytest.fixture(scope="module")
def surface(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, WorkerProcess]]:
    """A worker holding three sessions of team 1 (one large) and one of team 2."""
    root = tmp_path_factory.mktemp("surface")
    broker = start_broker(free_port(), root / "tansu.log")
    asyncio.run(create_topics(broker.bootstrap, [CAPTURE], PARTITIONS))
    stack = Stack(broker, root)
    worker = stack.worker(**WINDOWS).start()
    try:
        values = [
            builders.capture(
                session_id="big",
                snapshot=builders.snapshot_data(
                    data=builders.encode_events(
                        builders.events(60, full=i == 0, start=builders.TS + i * 1000)
                    ),
                ),
            )
            for i in range(BIG_BATCHES)
        ]
        values += [builders.capture(session_id=f"small-{i}") for i in range(2)]
        values.append(builders.capture(token="token-2", team_id=2, session_id="other-team"))
        stack.produce(values)
        wait_until(
            lambda: worker.scalar("SELECT count() FROM session_replay_summary") == 4,
            90,
            "four sessions summarised",
        )
        yield stack, worker
    except BaseException:
        print(worker.log_tail())
        raise
    finally:
        worker.stop()
        broker.stop()


def call(
    worker: WorkerProcess,
    path: str,
    key: str | None = None,
    method: str = "GET",
    body: bytes | None = None,
    scheme: str = "Bearer",
) -> tuple[int, http.client.HTTPResponse, bytes]:
    """One request with the path sent exactly as given; (status, response, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=60)
    try:
        headers = {} if key is None else {"Authorization": f"{scheme} {key}"}
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response, response.read()
    finally:
        connection.close()


def admin(worker: WorkerProcess) -> str:
    key = read_admin_key(load_settings(worker.env))
    assert key
    return key


READ_ROUTES = [
    "/api/teams/1/sessions",
    "/api/teams/1/sessions/small-0",
    "/api/teams/1/sessions/small-0/network",
    "/api/teams/1/sessions/small-0/snapshots",
]


@pytest.mark.parametrize("path", READ_ROUTES)
def test_read_routes_answer_only_the_teams_own_key(
    surface: tuple[Stack, WorkerProcess], path: str
) -> None:
    _, worker = surface
    assert call(worker, path, "read-key-1")[0] == 200
    for key, scheme in [
        (None, "Bearer"),
        ("", "Bearer"),
        ("wrong", "Bearer"),
        ("read-key-2", "Bearer"),  # another team's key
        ("read-key-1x", "Bearer"),
        ("read-key-1", "Basic"),
        (admin(worker), "Bearer"),  # the admin key is not a read key
    ]:
        status, _, body = call(worker, path, key, scheme=scheme)
        assert status == 401, (path, key, scheme)
        assert json.loads(body) == {"error": "missing or invalid read key for this team"}
    team3 = path.replace("/teams/1/", "/teams/3/")  # a team without a read key
    assert call(worker, team3, "")[0] == 401
    assert call(worker, path.replace("/teams/1/", "/teams/9/"), "read-key-1")[0] == 401


def test_sql_answers_only_the_admin_key(surface: tuple[Stack, WorkerProcess]) -> None:
    _, worker = surface
    key = admin(worker)
    status, _, body = call(worker, "/api/sql", key, "POST", b"SELECT 1 AS one")
    assert status == 200 and json.loads(body) == {"columns": ["one"], "rows": [[1]]}
    for presented, scheme in [
        (None, "Bearer"),
        ("", "Bearer"),
        ("read-key-1", "Bearer"),
        (key[:-1], "Bearer"),
        (key + "x", "Bearer"),
        (key, "Basic"),
    ]:
        status, _, body = call(worker, "/api/sql", presented, "POST", b"SELECT 1", scheme)
        assert (status, json.loads(body)) == (401, {"error": "missing or invalid admin key"})
    assert call(worker, "/api/sql", key, "GET")[0] == 405


def test_the_generated_admin_key_is_private_and_the_cli_uses_it(
    surface: tuple[Stack, WorkerProcess],
) -> None:
    _, worker = surface
    assert "REPLAY_ADMIN_KEY" not in worker.env
    path = load_settings(worker.env).admin_key_path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and len(path.read_text().strip()) >= 32
    out = replay(worker.env, "sql", "--format", "jsonl", "SELECT count() AS n FROM system.one")
    assert out.returncode == 0 and json.loads(out.stdout) == {"n": 1}, out.stderr
    listed = replay(worker.env, "sessions", "list", "--team", "1", "--format", "jsonl")
    assert {json.loads(line)["session_id"] for line in listed.stdout.splitlines()} == {
        "big",
        "small-0",
        "small-1",
    }
    wrong = replay(worker.env | {"REPLAY_ADMIN_KEY": "x" * 32}, "sql", "SELECT 1")
    assert wrong.returncode == 1 and "invalid admin key" in wrong.stderr


BAD_PARAMETERS = [
    "/api/teams/1/sessions?limit=" + "1" + "0" * 30,
    "/api/teams/1/sessions?limit=" + "9" * 5000,
    "/api/teams/1/sessions?limit=-1",
    "/api/teams/1/sessions?limit=0",
    "/api/teams/1/sessions?limit=%C2%B2",  # superscript two: a digit to str.isdigit
    "/api/teams/1/sessions?limit=%D9%A3",  # Arabic-Indic three
    "/api/teams/1/sessions?since=garbage",
    "/api/teams/1/sessions?since=0001-01-01",
    "/api/teams/1/sessions?until=9999-12-31T23:59:59",
    "/api/teams/1/sessions?since=2026-13-01",
    "/api/teams/1/sessions?since=%00",
    "/api/teams/abc/sessions",
    "/api/teams/-1/sessions",
    "/api/teams/0/sessions",
    "/api/teams/%D9%A1/sessions",
    "/api/teams/" + "1" * 5000 + "/sessions",
    "/api/teams/99999999999999999999/sessions",
    "/api/teams/1/sessions/" + "a" * 201,
    "/api/teams/1/sessions/bad..id",
    "/api/teams/1/sessions/a'b",
    "/api/teams/1/sessions/..%2F..%2Fetc%2Fpasswd",
    "/api/teams/1/sessions/..%2F..%2Fetc%2Fpasswd/snapshots",
    "/api/teams/1/sessions/%2e%2e/network",
    "/api/teams/1/sessions/x%00y/snapshots",
    "/api/teams/1/sessions/" + "a" * 100_000,  # past aiohttp's request-line limit
]


@pytest.mark.parametrize("path", BAD_PARAMETERS, ids=lambda p: p[:60])
def test_malformed_parameters_are_400(surface: tuple[Stack, WorkerProcess], path: str) -> None:
    _, worker = surface
    status, _, body = call(worker, path, "read-key-1")
    assert status == 400, (status, body[:200])
    assert b"root:" not in body and len(body) < 1000


def test_sql_probes_are_refused_without_leaking(surface: tuple[Stack, WorkerProcess]) -> None:
    stack, worker = surface
    key = admin(worker)
    paths = {
        "secret": "/etc/passwd",
        "teams": str(stack.tmp_path / "teams.json"),
        "out": str(stack.tmp_path / "out.txt"),
    }
    for probe in builders.SQL_PROBES:
        status, _, body = call(worker, "/api/sql", key, "POST", probe.format(**paths).encode())
        assert status in (400, 403), (probe, status, body[:300])
        text = body.decode()
        assert "root:" not in text and not any(secret in text for secret in SECRETS), probe
        assert len(json.loads(body)["error"]) <= 200
    assert not (stack.tmp_path / "out.txt").exists()
    long = b"SELECT " + b"1+" * 40_000 + b"1"
    assert call(worker, "/api/sql", key, "POST", long)[0] == 413
    connection = http.client.HTTPConnection("127.0.0.1", worker.web_port, timeout=60)
    try:  # chunked, no Content-Length: the worker stops reading at the limit
        pieces = iter([b"SELECT 1", *[b" + 1" * 4096] * 5])  # 80 KiB
        headers = {"Authorization": f"Bearer {key}"}
        connection.request("POST", "/api/sql", pieces, headers, encode_chunked=True)
        assert connection.getresponse().status == 413
    finally:
        connection.close()
    assert call(worker, "/api/sql", key, "POST", b"SELECT '\xff'")[0] == 400


def test_a_query_that_fails_mid_result_spoils_no_later_one(
    surface: tuple[Stack, WorkerProcess],
) -> None:
    """chDB can hand the rest of a failed result to the next query on the connection."""
    _, worker = surface
    key = admin(worker)
    for _ in range(12):
        status, _, body = call(worker, "/api/sql", key, "POST", b"SELECT number FROM numbers(1e6)")
        assert status == 400 and "396" in json.loads(body)["error"]  # too many result rows
        status, _, body = call(worker, "/api/sql", key, "POST", b"SELECT 7 AS n")
        assert (status, json.loads(body)) == (200, {"columns": ["n"], "rows": [[7]]})


@pytest.mark.parametrize(
    "path", ["/", "/table/", "/table/summarize/", "/router/", "/graph/", "/performance/"]
)
def test_fausts_own_views_are_not_served(surface: tuple[Stack, WorkerProcess], path: str) -> None:
    _, worker = surface
    assert call(worker, path)[0] == 404


def test_snapshots_stream_what_sessions_get_prints(surface: tuple[Stack, WorkerProcess]) -> None:
    _, worker = surface
    status, response, body = call(worker, "/api/teams/1/sessions/big/snapshots", "read-key-1")
    assert status == 200
    assert response.getheader("Transfer-Encoding") == "chunked"
    assert response.getheader("Content-Length") is None
    assert len(body) > 64 * 1024 and body.count(b"\n") == BIG_BATCHES * 60
    printed = replay(worker.env, "sessions", "get", "--team", "1", "--session", "big")
    assert printed.returncode == 0, printed.stderr
    assert body.decode() == printed.stdout
    # a session of another team, or none at all, is 404 before any body is sent
    for session in ("other-team", "nope"):
        status, response, body = call(
            worker, f"/api/teams/1/sessions/{session}/snapshots", "read-key-1"
        )
        assert (status, json.loads(body)) == (404, {"error": "no such session"})
