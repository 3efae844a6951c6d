"""Dead letters as data: why a message could not be processed, and where it came from.

A dead letter carries the original bytes untouched plus headers naming the reason,
the stage, the error and the source topic/partition/offset, so an SRE can inspect it
and replay it into the source topic after a fix.
"""

from __future__ import annotations

from collections.abc import Iterable

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
        "invalid_lz4",
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


# Original headers a letter keeps: they come from outside, so they are bounded too.
MAX_KEPT_HEADERS = 32
MAX_KEPT_HEADER_BYTES = 16 * 1024


def kept_headers(original: Iterable[tuple[str, bytes | None]]) -> list[tuple[str, bytes]]:
    """The original headers worth keeping on a letter: none of our own (`dlq-*`,
    `replay-*`, which a producer could forge), null values as empty, at most
    MAX_KEPT_HEADERS of them and MAX_KEPT_HEADER_BYTES in all."""
    kept: list[tuple[str, bytes]] = []
    room = MAX_KEPT_HEADER_BYTES
    for key, value in original:
        if not isinstance(key, str) or key.startswith(("dlq-", "replay-")):
            continue
        data = value if isinstance(value, bytes) else b""
        room -= len(key) + len(data)
        if room < 0 or len(kept) >= MAX_KEPT_HEADERS:
            break
        kept.append((key, data))
    return kept


def dlq_headers(
    rejection: Rejected, source: SourceRef, original: Iterable[tuple[str, bytes | None]] = ()
) -> list[tuple[str, bytes]]:
    """Original headers (bounded, minus our own internal ones), then the dlq-* headers."""
    return [
        *kept_headers(original),
        ("dlq-reason", rejection.reason.encode()),
        ("dlq-stage", rejection.stage.encode()),
        ("dlq-error", rejection.error.encode("utf-8", "replace")),
        ("dlq-source-topic", source.topic.encode()),
        ("dlq-source-partition", str(source.partition).encode()),
        ("dlq-source-offset", str(source.offset).encode()),
    ]
