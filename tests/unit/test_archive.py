"""The archive's pure parts: object keys (stable, documented, never escaping the
prefix) and how S3 errors are classified (its line format and the merge of both tiers:
tests/unit/test_read.py; the spill end to end: tests/e2e/test_archive*.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from botocore.exceptions import (
    ClientError,
    ConnectionClosedError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

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
