"""`replay-ingest capture` on a real Tansu broker: what posthog-js and plain rrweb post
lands on the topics in the right shape, 200 only once Kafka acknowledged, 503 while it
cannot, and hostile requests each get their 4xx, are counted, and leave good requests
next to them untouched."""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from config.teams import DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.localstack import Broker, create_topics
from streams.decode import decode_pieces
from streams.models import ItemsEvent, ItemsMessage
from streams.parse import parse_capture
from streams.topics import CAPTURE_TOPIC, ITEMS_TOPIC
from tests.capture_server import (
    ENCODINGS,
    CaptureServer,
    encoded,
    other_event,
    rrweb_events,
    snapshot_event,
    start_capture,
)
from tests.stack import PARTITIONS, consume

ORIGIN = "https://shop.example"
OK = {"status": 1}


@pytest.fixture
def topics(broker: Broker) -> Broker:
    asyncio.run(create_topics(broker.bootstrap, [ITEMS_TOPIC, CAPTURE_TOPIC], PARTITIONS))
    return broker


@pytest.fixture
def capture(topics: Broker, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Any]:
    """Factory: a capture server on the broker with REPLAY_* overrides, stopped after."""
    started: list[CaptureServer] = []

    def start(**overrides: str) -> CaptureServer:
        started.append(start_capture(topics, tmp_path, **overrides))
        return started[-1]

    yield start
    for server in started:
        server.stop()
        if request.node.rep_call.failed:
            print(f"--- {server.log_path.name} ---\n{server.log_tail()}")


def read(broker: Broker, topic: str, count: int) -> list[Any]:
    return asyncio.run(consume(broker.bootstrap, topic, count, 30))


def items(broker: Broker, count: int) -> dict[str, list[tuple[ItemsMessage, ItemsEvent, Any]]]:
    """`count` items messages, by session: (message, its data, the record)."""
    by_session: dict[str, list[tuple[ItemsMessage, ItemsEvent, Any]]] = {}
    for record in read(broker, ITEMS_TOPIC, count):
        message = msgspec.json.decode(record.value, type=ItemsMessage)
        data = msgspec.json.decode(message.data, type=ItemsEvent)
        by_session.setdefault(record.key.decode(), []).append((message, data, record))
    return by_session


def events_of(entries: list[tuple[ItemsMessage, ItemsEvent, Any]]) -> list[Any]:
    return [json.loads(bytes(item)) for _, data, _ in entries for item in data.properties.items]


def test_posthog_and_plain_bodies_land_on_the_topics(topics: Broker, capture: Any) -> None:
    server = capture(capture_max_message_bytes="300000")
    sent: dict[str, list[Any]] = {}
    for encoding in ENCODINGS:
        sent[f"s-{encoding}"] = rrweb_events(30, pad=2000)
        body, headers, query = encoded(
            [snapshot_event(sent[f"s-{encoding}"], session_id=f"s-{encoding}"), other_event()],
            encoding,
        )
        answer = server.post(
            f"/s/?ver=1.449.2{query.replace('?', '&')}", body, **headers, Origin=ORIGIN
        )
        assert (answer.status, answer.json()) == (200, OK), answer
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert answer.headers["Access-Control-Allow-Credentials"] == "true"
    sent["s-batch"] = rrweb_events(4)
    batch = {
        "api_key": "token-1",
        "batch": [other_event(), snapshot_event(sent["s-batch"], session_id="s-batch")],
    }
    assert server.post("/e/", json.dumps(batch).encode()).status == 200
    sent["s-single"] = rrweb_events(3)
    single = snapshot_event(sent["s-single"], session_id="s-single")
    assert server.post("/i/v0/e/", gzip.compress(json.dumps(single).encode())).status == 200
    sent["s-plain"] = rrweb_events(5)
    plain = server.post(
        "/v1/recordings/s-plain/events?window_id=w-9",
        gzip.compress(json.dumps(sent["s-plain"]).encode()),
        Authorization="Bearer token-2",
    )
    assert (plain.status, plain.json()) == (200, OK)
    big = rrweb_events(4, pad=600_000)  # its full snapshot alone is over the 300 kB limit
    assert (
        server.post("/s/", json.dumps([snapshot_event(big, session_id="s-big")]).encode()).status
        == 200
    )

    got = items(topics, len(sent) + 1)
    assert {
        session: events_of(entries) for session, entries in got.items() if session != "s-big"
    } == sent
    assert events_of(got["s-big"]) == [big[0], *big[2:]]
    message, data, record = got["s-plain"][0]
    assert (message.token, data.properties.window_id, data.properties.distinct_id) == (
        "token-2",
        "w-9",
        "s-plain",
    )
    headers = dict(record.headers)
    assert headers["uuid"].decode() == message.uuid and headers["token"] == b"token-2"
    seen = server.metrics()
    assert seen.total("replay_capture_events_total", outcome="stored") == 7
    assert seen.total("replay_capture_events_total", outcome="ignored") == 4
    count = int(seen.total("replay_capture_messages_total", format="chunked"))
    registry = TeamRegistry.of([Team(1, "token-1")])
    pieces = [parse_capture(r.value, registry, 10**8) for r in read(topics, CAPTURE_TOPIC, count)]
    assert {p.session_id for p in pieces} == {"s-big"} and count == pieces[0].chunk_count > 1
    assert all(len(r.value) < 300_000 for r in read(topics, CAPTURE_TOPIC, count))
    ordered = sorted(pieces, key=lambda p: p.chunk_index)
    assert json.loads(decode_pieces([p.data for p in ordered], "gzip-base64", 10**8)) == [big[1]]


def test_what_posthog_js_reads_before_it_records(capture: Any) -> None:
    server = capture()
    config = server.request("GET", "/array/token-1/config", Origin=ORIGIN)
    assert config.status == 200 and config.json()["sessionRecording"]["endpoint"] == "/s/"
    assert config.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert server.request("GET", "/array/token-disabled/config").json()["sessionRecording"] is False
    script = server.request("GET", "/array/token-1/config.js")
    assert script.status == 200 and b'_POSTHOG_REMOTE_CONFIG["token-1"]' in script.body
    assert script.headers["Content-Type"].startswith("application/javascript")
    assert server.request("GET", "/array/nobody/config.js").status == 401
    flags = server.post("/flags/?v=2", gzip.compress(b'{"token": "token-1"}'))
    assert (flags.status, flags.json()) == (200, {"flags": {}})
    preflight = server.request(
        "OPTIONS", "/s/", Origin=ORIGIN, Access_Control_Request_Method="POST"
    )
    assert preflight.status == 204 and preflight.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Authorization" in preflight.headers["Access-Control-Allow-Headers"]
    missing = server.request("GET", "/no/such/route", Origin=ORIGIN)
    assert missing.status == 404 and missing.headers["Access-Control-Allow-Origin"] == ORIGIN


def test_kafka_gone_is_503_with_retry_after_never_200(topics: Broker, capture: Any) -> None:
    server = capture(capture_produce_timeout_seconds="2")
    body = json.dumps([snapshot_event(rrweb_events(3))]).encode()
    assert server.post("/s/", body).status == 200
    topics.stop()
    answer = server.post("/s/", body, Origin=ORIGIN)
    assert answer.status == 503 and int(answer.headers["Retry-After"]) >= 1
    assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
    seen = server.metrics()
    assert seen.total("replay_capture_rejections_total", reason="kafka_unavailable") == 1
    assert seen.total("replay_capture_requests_total", route="/s/", status="503") == 1
    assert seen.total("replay_capture_kafka_connected") == 0  # ReplayCaptureKafkaUnavailable


def test_hostile_requests_get_their_4xx_and_good_ones_still_pass(
    topics: Broker, capture: Any
) -> None:
    server = capture(capture_max_body_bytes="1000000", capture_max_decoded_bytes="4000000")
    good = json.dumps([snapshot_event(rrweb_events(3), session_id="good")]).encode()
    assert server.post("/s/", good).status == 200
    deep = b'[{"event": "$snapshot", "properties": {"$snapshot_data": ' + b"[" * 100_000
    hostile = [
        ("/s/", b"x" * 1_500_000, {}, 413, "too_large"),
        ("/s/", gzip.compress(b"[" + b" " * 50_000_000 + b"]"), {}, 413, "too_large"),
        ("/s/", b'[{"event": "$snapshot", ', {}, 400, "bad_body"),
        ("/s/", deep, {}, 400, "bad_body"),
        (
            "/s/",
            json.dumps([snapshot_event(rrweb_events(2), token="stolen")]).encode(),
            {},
            401,
            "unknown_token",
        ),
        (
            "/v1/recordings/good/events",
            b"[]",
            {"Authorization": "Bearer stolen"},
            401,
            "unknown_token",
        ),
        ("/v1/recordings/good/events", b"[]", {}, 401, "unknown_token"),
        (
            "/v1/recordings/..%2Fx/events",
            b"[]",
            {"Authorization": "Bearer token-1"},
            400,
            "bad_body",
        ),
    ]
    for path, body, headers, status, _ in hostile:
        answer = server.post(path, body, **headers, Origin=ORIGIN)
        assert answer.status == status, (path, body[:60], answer)
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert server.post("/s/", good).status == 200
    # a team that does not record: 200 (posthog-js would retry), nothing written
    off = json.dumps([snapshot_event(rrweb_events(3), token="token-disabled", session_id="off")])
    assert server.post("/s/", off.encode()).status == 200
    # another team's token on team 1's session id: written as that token's, never team 1's
    other = json.dumps([snapshot_event(rrweb_events(3), token="token-2", session_id="good")])
    assert server.post("/s/", other.encode()).status == 200

    records = read(topics, ITEMS_TOPIC, 1 + len(hostile) + 1)
    tokens = [msgspec.json.decode(r.value, type=ItemsMessage).token for r in records]
    assert sorted(tokens) == ["token-1"] * (1 + len(hostile)) + ["token-2"]
    assert {r.key for r in records} == {b"good"}
    seen = server.metrics()
    for reason in ("too_large", "bad_body", "unknown_token"):
        expected = sum(1 for *_, why in hostile if why == reason)
        assert seen.total("replay_capture_rejections_total", reason=reason) == expected, reason
    assert seen.total("replay_capture_events_total", outcome="dropped_team_off") == 1
    assert seen.total("replay_capture_requests_total", status="500") == 0


def test_a_token_over_its_rate_is_429_with_retry_after(capture: Any) -> None:
    server = capture(capture_rate_burst="3", capture_rate_per_second="0.1")
    body = json.dumps(rrweb_events(2)).encode()
    path = "/v1/recordings/s-1/events"
    assert server.post(path, body, Authorization="Bearer token-1").status == 200
    statuses = [server.post(path, body, Authorization="Bearer token-1").status for _ in range(3)]
    assert statuses == [200, 200, 429]
    limited = server.post(path, body, Authorization="Bearer token-1", Origin=ORIGIN)
    assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
    assert limited.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert server.post(path, body, Authorization="Bearer token-2").status == 200
    assert server.metrics().total("replay_capture_rejections_total", reason="rate_limited") == 2


def test_the_demo_routes_refuse_what_is_not_theirs(capture: Any, tmp_path: Path) -> None:
    """Ids and file names from the URL never become a path or a statement: a bad session
    id is 400, a script or bundle not in the npm folder 404 (a file beside it too), the
    summary without a worker key 503; none is 500, and the good route still answers."""
    teams = tmp_path / "demo-teams.json"
    teams.write_text(json.dumps([{"team_id": 1, "token": DEMO_TOKEN}]))
    node_modules = tmp_path / "js" / "node_modules"
    node_modules.mkdir(parents=True)
    (tmp_path / "js" / "secret.js").write_text("SECRET")
    server = capture(teams_file=str(teams), capture_node_modules=str(node_modules))
    refused = [
        ("/demo/sessions/bad%24id", 400),
        ("/demo/sessions/" + "x" * 300, 400),
        ("/demo/sessions/good-id", 503),  # no worker key in the data dir
        ("/demo/secret.js", 404),
        ("/demo/rrweb.js", 404),  # rrweb not installed
        ("/static/..%2F..%2Fsecret.js", 404),
        ("/static/lazy-recorder.js", 404),  # posthog-js not installed
    ]
    for path, status in refused:
        answer = server.request("GET", path, Origin=ORIGIN)
        assert (answer.status, b"SECRET" in answer.body) == (status, False), path
        assert answer.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert server.request("GET", f"/array/{DEMO_TOKEN}/config").status == 200
    page = server.request("GET", "/")
    assert page.status == 200 and DEMO_TOKEN.encode() in page.body
    assert server.metrics().total("replay_capture_requests_total", status="500") == 0
