"""What capture reads from a body: the `$snapshot` events of posthog-js's three shapes
(array, single object, `{api_key, batch}`), one token per request, valid ids, and rrweb
events left as they came."""

from __future__ import annotations

import json

import pytest

from capture.refusal import Refused
from capture.shapes import parse_plain, parse_posthog, timestamp_ms
from tests.capture_server import other_event, rrweb_events, snapshot_event


def test_an_array_of_snapshots_and_other_events() -> None:
    events = rrweb_events(4)
    body = [snapshot_event(events, event_uuid="u-1"), other_event(), other_event("$autocapture")]
    parsed = parse_posthog(json.dumps(body).encode())
    assert (parsed.token, parsed.ignored, len(parsed.snapshots)) == ("token-1", 2, 1)
    snap = parsed.snapshots[0]
    assert (snap.session_id, snap.window_id, snap.distinct_id, snap.lib, snap.uuid) == (
        "session-1",
        "window-1",
        "user-1",
        "web",
        "u-1",
    )
    assert [json.loads(bytes(item)) for item in snap.items] == events
    assert [head.type for head in snap.heads] == [4, 2, 3, 3]
    assert snap.timestamp_ms == timestamp_ms("2026-10-26T08:53:20.000Z") == 1_793_004_800_000


def test_one_object_and_the_batch_shape() -> None:
    single = parse_posthog(json.dumps(snapshot_event(rrweb_events(2))).encode())
    assert len(single.snapshots) == 1
    batch = {"api_key": "token-2", "batch": [snapshot_event(rrweb_events(2), token="token-2")]}
    parsed = parse_posthog(json.dumps(batch).encode())
    assert parsed.token == "token-2" and len(parsed.snapshots) == 1
    no_token_inside = snapshot_event(rrweb_events(2))
    del no_token_inside["properties"]["token"]
    keyed = parse_posthog(json.dumps({"api_key": "token-1", "batch": [no_token_inside]}).encode())
    assert keyed.token == "token-1"


def test_cv_compressed_events_pass_untouched() -> None:
    compressed = {"type": 2, "timestamp": 5, "cv": "2024-10", "data": "\u001f\u008b\u0008\u0000"}
    raw = json.dumps([snapshot_event([compressed])]).encode()
    item = parse_posthog(raw).snapshots[0].items[0]
    assert json.loads(bytes(item)) == compressed


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([snapshot_event(rrweb_events(1)), other_event(token="token-2")], "several tokens"),
        ([snapshot_event(rrweb_events(1), session_id="../etc")], "not a valid id"),
        ([snapshot_event(rrweb_events(1), window_id="a b")], "not a valid id"),
        ([snapshot_event(rrweb_events(1), session_id="")], "missing"),
        ([snapshot_event([{"type": "x", "timestamp": 1}])], "$snapshot_data"),
        ([snapshot_event([[1, 2]])], "$snapshot_data"),
        ({"event": "$snapshot"}, "without properties"),
        ({"neither": 1}, "neither an event nor a batch"),
        ("a string", "body"),
    ],
)
def test_malformed_requests_are_400(body: object, says: str) -> None:
    with pytest.raises(Refused) as refused:
        parse_posthog(json.dumps(body).encode())
    assert refused.value.status == 400 and says in refused.value.detail


@pytest.mark.parametrize("body", [b"[" * 50_000, b'{"batch": ' + b"[" * 50_000, b"{bad json"])
def test_deep_nesting_and_bad_json_are_400(body: bytes) -> None:
    with pytest.raises(Refused) as refused:
        parse_posthog(body)
    assert refused.value.status == 400


def test_the_plain_intake_body_and_its_ids() -> None:
    events = rrweb_events(3)
    snap = parse_plain(json.dumps(events).encode(), "s-1", "", "")
    assert (snap.session_id, snap.window_id, snap.distinct_id, snap.uuid) == (
        "s-1",
        "",
        "s-1",
        None,
    )
    assert [json.loads(bytes(item)) for item in snap.items] == events
    with pytest.raises(Refused):
        parse_plain(json.dumps(events).encode(), "s/1", "", "")
    with pytest.raises(Refused):
        parse_plain(b'{"type": 2}', "s-1", "", "")
