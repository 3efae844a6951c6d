"""Signed share links: a token that grants read access to one session of one team until
it expires, carried in the link itself (``?token=``) because a browser following a link
cannot send an ``Authorization`` header.

A token reads ``1.<team_id>.<expires_at>.<session_id>.<mac>``: the version, the team,
the expiry in epoch seconds, the session, and the HMAC-SHA256 (base64url, unpadded) of
everything before the last dot under the share key. The MAC covers the token's text
exactly as sent, so any change to it (a digit, a leading zero, a padding bit) is a
forgery; session ids have no dot (sinks.ids), so the fields split without escaping.
Pure: no clock and no I/O here, the caller passes `now` and the key.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from typing import Literal
from urllib.parse import quote

from sinks.ids import is_safe_id

VERSION = "1"
MAX_TOKEN_CHARS = 512  # a longer token is malformed, refused before any parsing
MAX_SHARE_SECONDS = 365 * 86400  # the longest life a link may be given
PLAYER_PATH = "/replay/{team_id}/{session_id}"  # the page a share link opens

Reason = Literal["forged", "expired", "other_session", "malformed"]
REASONS: tuple[Reason, ...] = ("forged", "expired", "other_session", "malformed")

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit also takes "²" and "٣"
_DURATION = re.compile(r"([0-9]{1,9})([smhdw]?)")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


class ShareRefused(Exception):
    """A share token does not grant this read; `reason` is one of REASONS (for a metric,
    never for the client, who gets the same answer for every reason)."""

    def __init__(self, reason: Reason) -> None:
        super().__init__(reason)
        self.reason: Reason = reason


def sign(key: bytes, team_id: int, session_id: str, expires_at: int) -> str:
    """The token granting a read of (team_id, session_id) until `expires_at` (epoch s)."""
    if team_id <= 0 or expires_at < 0 or not is_safe_id(session_id):
        raise ValueError("a share token needs a positive team, a safe session id, an expiry")
    payload = f"{VERSION}.{team_id}.{expires_at}.{session_id}"
    return f"{payload}.{_mac(key, payload)}"


def check(key: bytes, token: str, team_id: int, session_id: str, now: float) -> None:
    """Return if `token` grants reading (team_id, session_id) at `now`; else ShareRefused.

    The MAC is checked (in constant time) before the fields are believed, so a forged
    token learns nothing about which field would have been wrong."""
    if len(token) > MAX_TOKEN_CHARS or not token.isascii():
        raise ShareRefused("malformed")
    payload, _, mac = token.rpartition(".")
    fields = payload.split(".")
    if len(fields) != 4 or fields[0] != VERSION or not all(map(_DIGITS.fullmatch, fields[1:3])):
        raise ShareRefused("malformed")
    if not hmac.compare_digest(_mac(key, payload).encode(), mac.encode()):
        raise ShareRefused("forged")
    if int(fields[1]) != team_id or fields[3] != session_id:
        raise ShareRefused("other_session")
    if now >= int(fields[2]):
        raise ShareRefused("expired")


def share_url(base_url: str, team_id: int, session_id: str, token: str) -> str:
    """The link to the session's player page, carrying its token."""
    path = PLAYER_PATH.format(team_id=team_id, session_id=quote(session_id, safe=""))
    return f"{base_url.rstrip('/')}{path}?token={quote(token, safe='')}"


def parse_duration(text: str) -> int:
    """Seconds of a link's life: ``90s``, ``15m``, ``12h``, ``7d``, ``2w`` or plain
    seconds, positive and at most MAX_SHARE_SECONDS; ValueError (saying what is
    accepted) otherwise. The API's ``?expires=`` and the CLI's ``--expires`` both."""
    match = _DURATION.fullmatch(text.strip())
    seconds = int(match[1]) * _UNIT_SECONDS[match[2]] if match else 0
    if not 0 < seconds <= MAX_SHARE_SECONDS:
        raise ValueError(
            "must be a duration like 90s, 15m, 12h, 7d, 2w or plain seconds, "
            f"positive and at most {MAX_SHARE_SECONDS // 86400} days"
        )
    return seconds


def _mac(key: bytes, payload: str) -> str:
    digest = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
