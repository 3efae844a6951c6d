"""The archive's pure parts: object keys (stable, documented, never escaping the
prefix), how S3 errors are classified, and events coming out of both tiers in timestamp
order, each once (the spill end to end: tests/e2e/test_archive*.py)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator
from datetime import UTC, datetime
from typing import Any

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)
from hypothesis import given
from hypothesis import strategies as st

from retention.read import merge_lines, ordered_events
from sinks.s3 import classify
from sinks.s3_keys import UnsafeKey, part_key, session_key

NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)


def test_session_key_is_stable_and_documented() -> None:
    start = datetime(2026, 11, 3, 23, 59, tzinfo=UTC)
    key = session_key("recordings/", 7, "0192-abc_DEF", start)
    assert key == "recordings/v1/team_id=7/date=2026-11-03/session_id=0192-abc_DEF.jsonl.zst"
    assert session_key("", 7, "s", start).startswith("v1/team_id=7/")


@pytest.mark.parametrize("session_id", ["../x", "a/b", "", "..", "a" * 201, "-x", "a\\b", "é"])
def test_ids_that_would_escape_the_prefix_never_form_a_key(session_id: str) -> None:
    with pytest.raises(UnsafeKey):
        session_key("p", 1, session_id, NOW)


@pytest.mark.parametrize("team_id", [0, -1, True])
def test_team_ids_must_be_positive_integers(team_id: int) -> None:
    with pytest.raises(UnsafeKey):
        session_key("p", team_id, "s", NOW)


@given(st.lists(st.lists(st.integers(0, 50), min_size=1, max_size=6), min_size=1, max_size=8))
def test_events_come_out_in_timestamp_order(batches: list[list[int]]) -> None:
    batches = sorted(batches, key=min)
    texts = [
        (min(b), json.dumps([{"timestamp": ts, "i": [n, i]} for i, ts in enumerate(b)]))
        for n, b in enumerate(batches)
    ]
    out = [json.loads(line) for line in ordered_events(texts)]
    expected = sorted(
        ({"timestamp": ts, "i": [n, i]} for n, b in enumerate(batches) for i, ts in enumerate(b)),
        key=lambda e: (e["timestamp"], e["i"]),
    )
    assert out == expected


def test_later_parts_sit_next_to_part_0_under_a_documented_key() -> None:
    base = "recordings/v1/team_id=7/date=2026-11-03/session_id=s1.jsonl.zst"
    assert part_key(base, 0) == base
    assert part_key(base, 2) == (
        "recordings/v1/team_id=7/date=2026-11-03/session_id=s1.part-000002.jsonl.zst"
    )
    assert part_key(base, 2).startswith(base.removesuffix("jsonl.zst"))


def _client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "PutObject",
    )


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (_client_error(403, "AccessDenied"), "permanent"),
        (_client_error(400, "InvalidArgument"), "permanent"),
        (_client_error(400, "EntityTooLarge"), "permanent"),
        (_client_error(404, "NoSuchUpload"), "permanent"),
        (_client_error(301, "PermanentRedirect"), "permanent"),
        (_client_error(404, "NoSuchKey"), "missing"),
        (_client_error(404, "404"), "missing"),
        (_client_error(503, "SlowDown"), "transient"),
        (_client_error(429, "TooManyRequests"), "transient"),
        (_client_error(400, "RequestTimeout"), "transient"),
        (_client_error(500, "InternalError"), "transient"),
        (_client_error(502, "BadGateway"), "transient"),
        (EndpointConnectionError(endpoint_url="http://x"), "transient"),
        (ConnectionClosedError(endpoint_url="http://x"), "transient"),
        (ReadTimeoutError(endpoint_url="http://x"), "transient"),
        (ConnectionResetError(), "transient"),
        (TimeoutError(), "transient"),
        (NoCredentialsError(), "permanent"),
        (ParamValidationError(report="bad"), "permanent"),
    ],
)
def test_s3_errors_are_classified_by_status_and_code(error: BaseException, kind: str) -> None:
    assert classify(error) == kind


async def _lines(items: list[tuple[int, str]]) -> AsyncGenerator[bytes, None]:
    for ts, tag in items:
        yield json.dumps({"timestamp": ts, "tag": tag}).encode()


@given(st.lists(st.lists(st.integers(0, 30), max_size=8), max_size=5))
def test_tiers_merge_in_timestamp_order_each_line_once(stamps: list[list[int]]) -> None:
    sources = [sorted(s) for s in stamps]
    items = [[(ts, f"{n}.{i}") for i, ts in enumerate(s)] for n, s in enumerate(sources)]

    async def run() -> list[dict[str, Any]]:
        return [json.loads(x) async for x in merge_lines([_lines(i) for i in items])]

    out = asyncio.run(run())
    # ties: source order, then position in the source
    expected = sorted(
        (e for source in items for e in source),
        key=lambda e: (e[0], int(e[1].split(".")[0]), int(e[1].split(".")[1])),
    )
    assert [(e["timestamp"], e["tag"]) for e in out] == expected
