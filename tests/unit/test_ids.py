"""One id pattern: sinks.ids decides, and every edge that takes an id (the ingest, the
S3 keys, the HTTP API) agrees with it on any text."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api.params import BadRequest, parse_session_id
from sinks.ids import MAX_ID_CHARS, UnsafeId, check_id, is_safe_id
from sinks.s3_keys import UnsafeKey, session_key
from streams.dlq import Rejected
from streams.parse import valid_id

VALID = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}", fullmatch=True)
ANY_TEXT = st.one_of(
    st.text(max_size=250),
    st.text(alphabet="aZ09_-./'\\ \n\x00é", max_size=8),
    VALID,
)


@pytest.mark.parametrize(
    "value",
    ["", "-a", "_a", "a.b", "../etc", "a/b", "a b", "a'b", "é", "a\n", "a" * (MAX_ID_CHARS + 1)],
)
def test_unsafe_ids_are_refused_with_their_name(value: str) -> None:
    assert not is_safe_id(value)
    with pytest.raises(UnsafeId, match=r"^session_id .* is not a valid id$"):
        check_id(value, "session_id")


@given(VALID)
def test_a_valid_id_is_returned_as_it_is(value: str) -> None:
    assert is_safe_id(value) and check_id(value) == value


def test_non_strings_are_not_ids() -> None:
    assert not is_safe_id(None) and not is_safe_id(12)


def _accepts(check: object, value: str, refusal: type[Exception]) -> bool:
    try:
        check(value)  # type: ignore[operator]
    except refusal:
        return False
    return True


@given(ANY_TEXT)
def test_every_edge_agrees_with_the_one_pattern(value: str) -> None:
    start = datetime(2024, 1, 1, tzinfo=UTC)
    verdicts = {
        "ids": is_safe_id(value),
        "ingest": _accepts(lambda v: valid_id(v, "session_id", required=False), value, Rejected),
        "s3": _accepts(lambda v: session_key("p", 1, v, start), value, UnsafeKey),
        "api": _accepts(parse_session_id, value, BadRequest),
    }
    if value == "":  # the ingest takes an absent optional id as ""
        verdicts.pop("ingest")
    assert len(set(verdicts.values())) == 1, verdicts
