"""Statistics records in the layout before the summary schema was declared once
(replay-ingest up to 2026-11): records of that layout may still be in the statistics
topic when a worker of this version starts, so they are read and converted rather than
dead-lettered. Remove once no worker of that version runs and its topic has turned over.
"""

from __future__ import annotations

import msgspec

from sinks.clickhouse.summary import SessionFigures
from streams.models import BatchStats


class _Summary(msgspec.Struct, frozen=True, array_like=True):
    first_timestamp: int
    last_timestamp: int
    event_count: int
    has_full_snapshot: bool
    click_count: int
    keypress_count: int
    mouse_activity_count: int
    console_log_count: int
    console_warn_count: int
    console_error_count: int
    first_url: str
    first_url_timestamp: int
    urls: list[str]
    active_segments: list[tuple[int, int]]


class _BatchStats(msgspec.Struct, frozen=True, array_like=True):
    team_id: int
    session_id: str
    window_id: str
    distinct_id: str
    chunk_id: str
    message_count: int
    size: int
    retention_days: int
    summary: _Summary


_decoder = msgspec.msgpack.Decoder(list[_BatchStats])


def _converted(old: _BatchStats) -> BatchStats:
    s = old.summary
    figures = SessionFigures(
        distinct_id=old.distinct_id,
        min_first_timestamp=s.first_timestamp,
        max_last_timestamp=s.last_timestamp,
        first_url=s.first_url,
        first_url_timestamp=s.first_url_timestamp,
        all_urls=s.urls,
        click_count=s.click_count,
        keypress_count=s.keypress_count,
        mouse_activity_count=s.mouse_activity_count,
        console_log_count=s.console_log_count,
        console_warn_count=s.console_warn_count,
        console_error_count=s.console_error_count,
        active_segments=s.active_segments,
        size=old.size,
        event_count=s.event_count,
        message_count=old.message_count,
        has_full_snapshot=s.has_full_snapshot,
        window_ids=[old.window_id] if old.window_id else [],
        retention_days=old.retention_days,
    )
    return BatchStats(old.team_id, old.session_id, old.chunk_id, figures)


def decode_legacy_stats(raw: bytes) -> list[BatchStats]:
    """A record of the previous layout (raises msgspec errors like the current one)."""
    return [_converted(old) for old in _decoder.decode(raw)]
