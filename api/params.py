"""What a request must carry: its path and query parameters, parsed and bounded (400
otherwise), and its key (a team's read key, the admin key), compared in constant time."""

from __future__ import annotations

import hmac
from datetime import UTC, datetime

from faust.web import Request

from api.share import parse_duration
from config.teams import TeamRegistry
from sinks.ids import is_safe_id

MAX_LIMIT = 1000
MAX_TEAM_ID = 2**63 - 1
# DateTime64(3) covers 1900-01-01 .. 2299-12-31; a bound outside it is a client error.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, tzinfo=UTC)


class BadRequest(ValueError):
    """A request parameter is invalid (400)."""


def parse_team_id(value: str) -> int:
    """A team id in the path: ASCII digits, in Int64 range."""
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise BadRequest("team_id must be a positive integer")
    team_id = int(value)
    if not 0 < team_id <= MAX_TEAM_ID:
        raise BadRequest("team_id must be a positive integer")
    return team_id


def parse_session_id(value: str) -> str:
    if not is_safe_id(value):
        raise BadRequest("session_id is not a valid id")
    return value


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO 8601 date or date-time (naive means UTC), or None when absent."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise BadRequest(f"{name} must be between 1900 and 2299")
    return moment


def parse_millis(value: str | None, name: str) -> int | None:
    """A moment in epoch milliseconds (ASCII digits, at most 15), or None when absent."""
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 15):
        raise BadRequest(f"{name} must be epoch milliseconds")
    return int(value)


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return 100
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not (
        1 <= int(value) <= MAX_LIMIT
    ):
        raise BadRequest(f"limit must be an integer in 1..{MAX_LIMIT}")
    return int(value)


def parse_expires(value: str | None, default: int) -> int:
    """A share link's life in seconds (api.share.parse_duration), `default` when absent."""
    if value is None or value == "":
        return default
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise BadRequest(f"expires {exc}") from None


def bearer(request: Request) -> bytes | None:
    """The key of an ``Authorization: Bearer <key>`` header, if there is one."""
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip().encode() if scheme.lower() == "bearer" and key.strip() else None


def holds_key(request: Request, key: bytes) -> bool:
    """Whether the request carries `key` (compared in constant time)."""
    presented = bearer(request)
    return presented is not None and hmac.compare_digest(presented, key)


def authorized(registry: TeamRegistry, team_id: int, request: Request) -> bool:
    """Whether the request carries this team's read key (a team without one: never)."""
    team = registry.by_id.get(team_id)
    if team is None or not team.read_key:
        return False
    return holds_key(request, team.read_key.encode())
