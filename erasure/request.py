"""An erasure request: what may be asked (validated here, for the API and the CLI
alike), and its row in ``session_recording_deletions``, version after version."""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from sinks.clickhouse.erasure import record_deletion
from sinks.clickhouse.queries import Insert
from sinks.ids import is_safe_id

KINDS = ("session", "person", "before")
MAX_SESSIONS = 1000  # session ids in one request
MAX_DISTINCT_ID_CHARS = 1000
# DateTime64(3) covers 1900-01-01 .. 2299-12-31
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, tzinfo=UTC)


class InvalidRequest(ValueError):
    """What was asked cannot be a request (the API's 400, the CLI's exit status 2)."""


@dataclass(frozen=True)
class Deletion:
    """One request in one version: what was asked, its state, and once resolved the
    sessions found and the counts (`removed`, per table, plus ``s3_objects``)."""

    deletion_id: str
    team_id: int
    kind: str
    session_ids: tuple[str, ...] = ()
    distinct_id: str = ""
    before_ms: int = 0
    requested_by: str = ""
    requested_ms: int = 0
    state: str = "requested"
    sessions: tuple[str, ...] = ()
    removed: Mapping[str, int] = field(default_factory=dict)
    s3_keys: tuple[str, ...] = ()
    completed_ms: int = 0
    version_ms: int = 0

    @property
    def person(self) -> str | None:
        """The distinct_id of a person's erasure, else None."""
        return self.distinct_id if self.kind == "person" else None

    def next(self, **changes: Any) -> Deletion:
        """The next version: later than this one, so it wins in FINAL whatever the clock."""
        version = max(now_ms(), self.version_ms + 1)
        return replace(self, **changes, version_ms=version)

    def insert(self) -> Insert:
        """This version as a row to insert."""
        return record_deletion(
            {
                "deletion_id": self.deletion_id,
                "team_id": self.team_id,
                "kind": self.kind,
                "session_ids": list(self.session_ids),
                "distinct_id": self.distinct_id,
                "before": _moment(self.before_ms),
                "requested_by": self.requested_by,
                "requested_at": _moment(self.requested_ms),
                "state": self.state,
                "sessions": list(self.sessions),
                "removed": dict(self.removed),
                "s3_keys": list(self.s3_keys),
                "completed_at": _moment(self.completed_ms),
                "version": _moment(self.version_ms),
            }
        )

    @classmethod
    def from_row(cls, row: Mapping[str, Any]) -> Deletion:
        """A version read back by sinks.clickhouse.erasure.deletion (its columns)."""
        return cls(
            deletion_id=str(row["deletion_id"]),
            team_id=int(row["team_id"]),
            kind=str(row["kind"]),
            session_ids=tuple(row["session_ids"]),
            distinct_id=str(row["distinct_id"]),
            before_ms=int(row["before_ms"]),
            requested_by=str(row["requested_by"]),
            requested_ms=int(row["requested_ms"]),
            state=str(row["state"]),
            sessions=tuple(row["sessions"]),
            removed={str(k): int(v) for k, v in dict(row["removed"]).items()},
            s3_keys=tuple(row["s3_keys"]),
            completed_ms=int(row["completed_ms"]),
            version_ms=int(row["version_ms"]),
        )

    def proof(self) -> dict[str, Any]:
        """The record the API and the CLI show: what was asked, and what was removed."""
        return {
            "deletion_id": self.deletion_id,
            "team_id": self.team_id,
            "kind": self.kind,
            "session_ids": list(self.session_ids),
            "distinct_id": self.distinct_id or None,
            "before": _iso(self.before_ms) if self.kind == "before" else None,
            "requested_by": self.requested_by,
            "requested_at": _iso(self.requested_ms),
            "state": self.state,
            "sessions": list(self.sessions),
            "removed": dict(self.removed),
            "s3_keys": list(self.s3_keys),
            "completed_at": _iso(self.completed_ms) if self.state == "done" else None,
        }


def now_ms() -> int:
    return int(time.time() * 1000)


def new_request(team_id: int, asked: Any, requested_by: str) -> Deletion:
    """A request from what was asked (any decoded JSON): an object with exactly one of
    ``session_ids`` (a list of ids), ``distinct_id`` (a string) or ``before`` (an ISO
    8601 date or date-time, UTC if naive); InvalidRequest otherwise."""
    if not isinstance(asked, Mapping):
        raise InvalidRequest("the body must be a JSON object")
    given = [k for k in ("session_ids", "distinct_id", "before") if asked.get(k) is not None]
    unknown = set(asked) - {"session_ids", "distinct_id", "before"}
    if unknown:
        raise InvalidRequest(f"unknown field(s): {', '.join(sorted(map(str, unknown)))[:200]}")
    if len(given) != 1:
        raise InvalidRequest("give exactly one of session_ids, distinct_id or before")
    base = Deletion(uuid.uuid4().hex, team_id, "", requested_by=requested_by)
    now = now_ms()
    base = replace(base, requested_ms=now, version_ms=now)
    if given[0] == "session_ids":
        return replace(base, kind="session", session_ids=_session_ids(asked["session_ids"]))
    if given[0] == "distinct_id":
        return replace(base, kind="person", distinct_id=_distinct_id(asked["distinct_id"]))
    return replace(base, kind="before", before_ms=_before(asked["before"]))


def _session_ids(value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or len(value) > MAX_SESSIONS:
        raise InvalidRequest(f"session_ids must be a list of 1 to {MAX_SESSIONS} ids")
    if not all(is_safe_id(v) for v in value):
        raise InvalidRequest("session_ids holds an invalid id")
    return tuple(dict.fromkeys(value))


def _distinct_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_DISTINCT_ID_CHARS:
        raise InvalidRequest(f"distinct_id must be a string of 1 to {MAX_DISTINCT_ID_CHARS} chars")
    return value


def _before(value: Any) -> int:
    if not isinstance(value, str):
        raise InvalidRequest("before must be an ISO 8601 date or date-time")
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise InvalidRequest("before must be an ISO 8601 date or date-time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise InvalidRequest("before must be between 1900 and 2299")
    return int(moment.timestamp() * 1000)


def _moment(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _iso(ms: int) -> str:
    return _moment(ms).isoformat().replace("+00:00", "Z")
