"""Share tokens grant one session of one team until they expire, and nothing else: any
change to a token, another key, team or session, or a moment past the expiry is refused;
a link's life is read one way by the API and the CLI."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from api.params import BadRequest, parse_expires
from api.share import (
    MAX_SHARE_SECONDS,
    MAX_TOKEN_CHARS,
    Reason,
    ShareRefused,
    check,
    parse_duration,
    share_url,
    sign,
)

KEY = b"k" * 32
NOW = 1_767_225_600  # 2026-01-01
KEYS = st.binary(min_size=1, max_size=64)
TEAMS = st.integers(min_value=1, max_value=2**63 - 1)
SESSIONS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}", fullmatch=True)
EXPIRIES = st.integers(min_value=NOW, max_value=NOW + 10 * MAX_SHARE_SECONDS)


def refusal(
    token: str, team: int = 1, session: str = "s1", now: float = NOW, key: bytes = KEY
) -> Reason | None:
    """Why `check` refuses the token, or None if it grants the read."""
    try:
        check(key, token, team, session, now)
    except ShareRefused as refused:
        assert str(refused) == refused.reason
        return refused.reason
    return None


@given(KEYS, TEAMS, SESSIONS, EXPIRIES, st.integers(min_value=1, max_value=MAX_SHARE_SECONDS))
def test_a_token_opens_its_session_until_it_expires(
    key: bytes, team: int, session: str, expires_at: int, before: int
) -> None:
    token = sign(key, team, session, expires_at)
    assert len(token) <= MAX_TOKEN_CHARS and token.isascii()
    assert refusal(token, team, session, expires_at - before, key) is None
    assert refusal(token, team, session, expires_at - 0.001, key) is None
    assert refusal(token, team, session, expires_at, key) == "expired"
    assert refusal(token, team, session, expires_at + before, key) == "expired"


@given(SESSIONS, EXPIRIES, st.data())
def test_any_bit_flipped_is_refused(session: str, expires_at: int, data: st.DataObject) -> None:
    token = sign(KEY, 1, session, expires_at)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    flipped = token[:index] + chr(ord(token[index]) ^ (1 << bit)) + token[index + 1 :]
    assert refusal(flipped, 1, session, NOW - 1) in ("forged", "malformed")


@given(TEAMS, TEAMS, SESSIONS, SESSIONS)
def test_a_token_opens_no_other_team_or_session(
    team: int, other_team: int, session: str, other_session: str
) -> None:
    assume((other_team, other_session) != (team, session))
    token = sign(KEY, team, session, NOW + 60)
    assert refusal(token, other_team, other_session) == "other_session"


@given(KEYS, KEYS, SESSIONS)
def test_a_token_of_another_key_is_forged(key: bytes, other: bytes, session: str) -> None:
    assume(key != other)
    assert refusal(sign(other, 1, session, NOW + 60), 1, session, key=key) == "forged"


@given(st.text(max_size=600))
def test_any_text_is_refused_without_an_error(text: str) -> None:
    assert refusal(text) in ("forged", "malformed")


def test_the_mac_is_checked_before_the_fields_are_believed() -> None:
    token = sign(KEY, 1, "s1", NOW - 3600)  # expired, and for another session
    assert refusal(token, 1, "s2") == "other_session"
    payload, _, mac = token.rpartition(".")
    # a genuine MAC glued to edited fields: a forgery, whatever field was changed
    for edited in ("1.2.{}.s1", "1.1.{}.s2", "1.01.{}.s1"):
        assert refusal(f"{edited.format(NOW + 3600)}.{mac}", 1, "s1") == "forged"
    assert refusal(f"{payload}.{mac}x") == "forged"
    assert refusal(f"{payload}.{mac[:-1]}") == "forged"


@pytest.mark.parametrize(
    "token",
    [
        "",
        ".",
        "1.1.99.s1",  # no MAC
        "2.1.1767225660.s1.mac",  # an unknown version
        "1.x.1767225660.s1.mac",
        "1.1.-5.s1.mac",
        "1.1.1767225660.s1.extra.mac",
        "1.\u0661.1767225660.s1.mac",  # Arabic-Indic one: a digit to str.isdigit
        "1.1.1767225660.s\u00e9.mac",  # not ASCII
        "1." + "1" * 20 + ".1767225660.s1.mac",
        "A" * (MAX_TOKEN_CHARS + 1),
        sign(KEY, 1, "s1", NOW + 60) + "." * (MAX_TOKEN_CHARS),  # too long, else genuine
    ],
    ids=lambda t: t[:40],
)
def test_malformed_tokens_are_refused_as_such(token: str) -> None:
    assert refusal(token) == "malformed"


@pytest.mark.parametrize(
    ("team", "session", "expires_at"), [(0, "s1", NOW), (1, "a.b", NOW), (1, "", NOW), (1, "s", -1)]
)
def test_sign_refuses_what_no_token_should_hold(team: int, session: str, expires_at: int) -> None:
    with pytest.raises(ValueError):
        sign(KEY, team, session, expires_at)


@given(TEAMS, SESSIONS, EXPIRIES)
def test_the_url_carries_the_token_to_the_player_page(
    team: int, session: str, expires_at: int
) -> None:
    token = sign(KEY, team, session, expires_at)
    url = share_url("http://127.0.0.1:6066/", team, session, token)
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("http", "127.0.0.1:6066")
    assert parts.path == f"/replay/{team}/{session}"
    assert parse_qs(parts.query) == {"token": [token]}
    assert url.startswith("http://127.0.0.1:6066/replay/")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90),
        ("15m", 900),
        ("12h", 43200),
        ("7d", 604800),
        ("2w", 1209600),
        ("3600", 3600),
        (" 1d ", 86400),
        ("365d", MAX_SHARE_SECONDS),
        ("52w", 52 * 7 * 86400),
        (str(MAX_SHARE_SECONDS), MAX_SHARE_SECONDS),
    ],
)
def test_durations_read_as_seconds(text: str, seconds: int) -> None:
    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    "text",
    ["", "0", "0s", "-5", "1y", "366d", "53w", "1.5h", "1h30m", "h", "7D", "1e3", "\u00b2",
     "\u0663d", "9" * 10, "1 d", str(MAX_SHARE_SECONDS + 1)],
)  # fmt: skip
def test_other_durations_are_refused_saying_what_is_accepted(text: str) -> None:
    with pytest.raises(ValueError, match="like 90s, 15m, 12h, 7d, 2w"):
        parse_duration(text)


@given(st.integers(min_value=0, max_value=10**6), st.sampled_from("smhdw"))
def test_a_duration_is_its_count_of_units_within_a_year(count: int, unit: str) -> None:
    seconds = count * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    if 0 < seconds <= MAX_SHARE_SECONDS:
        assert parse_duration(f"{count}{unit}") == seconds
    else:
        with pytest.raises(ValueError):
            parse_duration(f"{count}{unit}")


def test_the_api_takes_the_default_life_and_says_what_is_wrong() -> None:
    assert parse_expires(None, 604800) == parse_expires("", 604800) == 604800
    assert parse_expires("1h", 604800) == 3600
    with pytest.raises(BadRequest, match=r"^expires must be a duration"):
        parse_expires("1y", 604800)
