"""Dead letters as data: why a message could not be processed, and where it came from.

A dead letter carries the original bytes untouched plus headers naming the reason,
the stage, the error and the source topic/partition/offset, so an SRE can inspect it
and replay it into the source topic after a fix.
"""

from __future__ import annotations

from streams.models import SourceRef

# Every reason a message can be dead-lettered for. Metrics, alerts and the DLQ tools
# key on these strings: add new ones, never rename.
REASONS = frozenset(
    {
        "oversized",
        "invalid_json",
        "missing_field",
        "invalid_event",
        "invalid_id",
        "unknown_token",
        "team_mismatch",
        "recording_disabled",
        "invalid_chunk",
        "invalid_base64",
        "invalid_gzip",
        "invalid_events",
        "invalid_entry",
        "chunk_expired",
        "internal_error",
        "unwritable_row",
        "implausible_timestamp",
        "too_many_open_sets",
        "too_many_open_windows",
        "too_deep",
    }
)

MAX_ERROR_CHARS = 500


class Rejected(Exception):
    """A message cannot be processed; raised by the pure stage functions."""

    def __init__(self, reason: str, stage: str, error: str) -> None:
        assert reason in REASONS, reason
        super().__init__(f"{reason} at {stage}: {error}")
        self.reason = reason
        self.stage = stage
        self.error = error[:MAX_ERROR_CHARS]


def dlq_headers(
    rejection: Rejected, source: SourceRef, original: list[tuple[str, bytes]] | None = None
) -> list[tuple[str, bytes]]:
    """Original headers (minus our own internal ones) followed by the dlq-* headers."""
    kept = [(k, v) for k, v in original or () if not k.startswith(("dlq-", "replay-"))]
    return [
        *kept,
        ("dlq-reason", rejection.reason.encode()),
        ("dlq-stage", rejection.stage.encode()),
        ("dlq-error", rejection.error.encode("utf-8", "replace")),
        ("dlq-source-topic", source.topic.encode()),
        ("dlq-source-partition", str(source.partition).encode()),
        ("dlq-source-offset", str(source.offset).encode()),
    ]
