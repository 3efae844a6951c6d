"""Why a capture request is refused: one exception carrying its status and metric reason,
so every refusal, wherever it is found, is answered and counted the same way."""

from __future__ import annotations

# The reasons of replay_capture_rejections_total, each with its status.
TOO_LARGE = "too_large"  # 413
BAD_BODY = "bad_body"  # 400
UNKNOWN_TOKEN = "unknown_token"  # 401
RATE_LIMITED = "rate_limited"  # 429
KAFKA_UNAVAILABLE = "kafka_unavailable"  # 503

STATUS_OF = {
    TOO_LARGE: 413,
    BAD_BODY: 400,
    UNKNOWN_TOKEN: 401,
    RATE_LIMITED: 429,
    KAFKA_UNAVAILABLE: 503,
}


class Refused(Exception):
    """A request the endpoint will not take: `reason` is a key of STATUS_OF, `detail`
    a short text for the client (never a traceback), `retry_after` seconds or None."""

    def __init__(self, reason: str, detail: str, retry_after: int | None = None) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after

    @property
    def status(self) -> int:
        return STATUS_OF[self.reason]


def bad(detail: str) -> Refused:
    """A malformed request (400); the detail cut short, as it may quote the input."""
    return Refused(BAD_BODY, detail[:200])
