"""What a spill run reports: the sessions whose archive moved on, and those that failed
(logged, counted in ``replay_spill_failures_total{reason}``, retried by the next run)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime

import metrics
from sinks.ids import UnsafeId
from sinks.s3 import S3Rejected
from sinks.s3_keys import UnsafeKey

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Candidate:
    """A session the spill looks at: past retention with raw rows left, or with a part
    left half-done."""

    team_id: int
    session_id: str
    distinct_id: str
    start: datetime
    end: datetime


class ArchiveMissing(RuntimeError):
    """A part is indexed but its object is not in S3."""


@dataclass(frozen=True, slots=True)
class SpillFailure:
    team_id: int
    session_id: str
    reason: str  # unsafe_id | missing_object | s3_rejected | s3_unavailable | internal_error
    error: str


@dataclass
class SpillReport:
    """What a spill run did: sessions whose archive moved on, and sessions that failed."""

    archived: int = 0
    failures: list[SpillFailure] = field(default_factory=list)

    def fail(self, c: Candidate, reason: str, exc: BaseException) -> None:
        metrics.SPILL_FAILURES.labels(reason).inc()
        failure = SpillFailure(c.team_id, c.session_id[:200], reason, str(exc)[:500])
        log.error(
            "spill of team %d session %r failed (%s), retried next run: %s",
            c.team_id,
            failure.session_id,
            reason,
            failure.error,
            exc_info=reason == "internal_error",
        )
        self.failures.append(failure)


def failure_reason(exc: Exception) -> str:
    """The reason label of a session's failure (S3 unavailable is the run's, not here)."""
    if isinstance(exc, UnsafeId | UnsafeKey):
        return "unsafe_id"
    if isinstance(exc, ArchiveMissing):
        return "missing_object"
    if isinstance(exc, S3Rejected):
        return "s3_rejected"
    return "internal_error"
