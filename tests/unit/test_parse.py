"""Parsing, validation and tenancy of capture messages (pure, no Kafka)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.teams import Team, TeamRegistry
from streams.dlq import Rejected
from streams.parse import parse_capture
from tests import builders

REGISTRY = TeamRegistry.of(
    [Team(1, "token-1"), Team(2, "token-2"), Team(3, "token-disabled", recording_enabled=False)]
)
MAX = 1_000_000


def parse(raw: bytes):
    return parse_capture(raw, REGISTRY, MAX)


def reason_of(raw: bytes, max_bytes: int = MAX) -> str:
    with pytest.raises(Rejected) as info:
        parse_capture(raw, REGISTRY, max_bytes)
    return info.value.reason


def test_valid_message_is_normalised() -> None:
    chunk = parse(builders.capture(session_id="s1", window_id="w1", distinct_id="d1"))
    assert (chunk.team_id, chunk.session_id, chunk.window_id, chunk.distinct_id) == (
        1,
        "s1",
        "w1",
        "d1",
    )
    assert chunk.compression == "gzip-base64" and chunk.chunk_count == 1
    assert chunk.set_key == f"1:s1:{chunk.chunk_id}"


def test_old_id_spelling_is_accepted() -> None:
    props = {"$session_id": None, "$window_id": None, "session_id": "old-s", "window_id": "old-w"}
    chunk = parse(builders.capture(properties=props))
    assert (chunk.session_id, chunk.window_id) == ("old-s", "old-w")


def test_team_comes_from_the_token_when_absent() -> None:
    assert parse(builders.capture(token="token-2", team_id=None)).team_id == 2


def test_no_compression_means_plain_json() -> None:
    snapshot = builders.snapshot_data(data='[{"type":2,"timestamp":1}]', compression=None)
    assert parse(builders.capture(snapshot=snapshot)).compression == "none"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\xff\xfe not json", "invalid_json"),
        (b'{"token": "token-1"', "invalid_json"),
        (builders.capture(drop=("data",)), "missing_field"),
        (builders.capture(drop=("token",)), "missing_field"),
        (builders.capture(properties={"$session_id": None}), "missing_field"),
        (builders.capture(team_id="1"), "invalid_event"),
        (builders.capture(event="$pageview"), "invalid_event"),
        (builders.capture(data="not json inside"), "invalid_json"),
        (builders.capture(token="nope"), "unknown_token"),
        (builders.capture(token="token-1", team_id=2), "team_mismatch"),
        (builders.capture(token="token-disabled", team_id=3), "recording_disabled"),
        (
            builders.capture(snapshot=builders.snapshot_data(chunk_index=2, chunk_count=2)),
            "invalid_chunk",
        ),
        (builders.capture(snapshot=builders.snapshot_data(chunk_count=0)), "invalid_chunk"),
        (builders.capture(snapshot=builders.snapshot_data(chunk_index=-1)), "invalid_chunk"),
        (builders.capture(snapshot=builders.snapshot_data(compression="brotli")), "invalid_chunk"),
        (builders.capture(snapshot=builders.snapshot_data(chunk_index="0")), "invalid_event"),
    ],
)
def test_rejections(raw: bytes, reason: str) -> None:
    assert reason_of(raw) == reason


@pytest.mark.parametrize("bad_id", ["../x", "a/b", "", ".hidden", "a" * 201, "a b", "é"])
def test_ids_that_could_escape_a_key_are_rejected(bad_id: str) -> None:
    assert reason_of(builders.capture(session_id=bad_id)) in ("invalid_id", "missing_field")
    snapshot = builders.snapshot_data(chunk_id=bad_id)
    assert reason_of(builders.capture(snapshot=snapshot)) in ("invalid_id", "missing_field")
    assert reason_of(builders.capture(window_id=bad_id or "/")) == "invalid_id"


def test_oversized_message_is_rejected_before_parsing() -> None:
    assert reason_of(builders.capture(), max_bytes=100) == "oversized"


@given(st.binary(max_size=2000))
def test_arbitrary_bytes_never_crash(raw: bytes) -> None:
    with contextlib.suppress(Rejected):
        parse(raw)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4)
            | st.dictionaries(st.sampled_from(["token", "data", "team_id", "x"]), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_arbitrary_json_never_crashes(value: object) -> None:
    import msgspec

    with contextlib.suppress(Rejected):
        parse(msgspec.json.encode(value))
