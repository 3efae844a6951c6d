"""Typed message shapes (msgspec structs): decoding into them validates as it parses.

msgspec decodes straight into these structs and skips fields it is not asked for,
which is what keeps the hot path fast (DESIGN: turning rrweb events into Python dicts
was most of the CPU in the slow variants).
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from sinks.clickhouse.summary import SessionFigures


class SnapshotData(msgspec.Struct):
    """`properties.snapshot_data`: one piece of a chunked rrweb batch."""

    chunk_id: str
    chunk_index: int
    chunk_count: int
    data: str
    compression: str | None = None
    has_full_snapshot: bool | None = None


class SnapshotProperties(msgspec.Struct):
    """`properties`: older producers send both id spellings, newer ones the `$` form."""

    snapshot_data: SnapshotData
    distinct_id: str | int | None = None
    dollar_session_id: str | None = msgspec.field(name="$session_id", default=None)
    dollar_window_id: str | None = msgspec.field(name="$window_id", default=None)
    session_id: str | None = None
    window_id: str | None = None


class SnapshotEvent(msgspec.Struct):
    """The JSON document inside the envelope's `data` string."""

    event: str
    properties: SnapshotProperties


class Envelope(msgspec.Struct):
    """One capture message on `session_recording_events` (DESIGN input shape)."""

    token: str
    data: str
    team_id: int | None = None
    distinct_id: str | int | None = None
    uuid: str | None = None


class ItemsProperties(msgspec.Struct, omit_defaults=True):
    """`properties` of a `$snapshot_items` event: one whole batch of rrweb events.

    The events stay raw JSON here: the decoder looks into one only if it carries
    posthog-js's per-event compression (`cv`), and stores the others untouched."""

    session_id: str | None = msgspec.field(name="$session_id", default=None)
    window_id: str | None = msgspec.field(name="$window_id", default=None)
    snapshot_source: str | None = msgspec.field(name="$snapshot_source", default=None)
    items: list[msgspec.Raw] = msgspec.field(name="$snapshot_items", default_factory=list)
    lib: str | None = msgspec.field(name="$lib", default=None)
    distinct_id: str | int | None = None


class ItemsEvent(msgspec.Struct):
    """The JSON document inside an items message's `data` string."""

    event: str
    properties: ItemsProperties


class ItemsMessage(msgspec.Struct, omit_defaults=True):
    """One message on `session_recording_snapshot_item_events` (DESIGN input shape, as
    PostHog's capture writes it): no team_id, the token decides the team. `uuid` is the
    batch's identity: its row's chunk_id, so a replayed message leaves one row."""

    token: str
    data: str
    uuid: str | None = None
    distinct_id: str | int | None = None
    ip: str | None = None
    now: str | None = None
    sent_at: str | None = None
    event: str | None = None
    timestamp: int | float | str | None = None


ITEMS_EVENT = "$snapshot_items"
# Headers PostHog's capture puts on an items message; any may be missing and the value
# decides (the worker reads only `content-encoding`).
ITEMS_HEADERS = ("token", "distinct_id", "session_id", "timestamp", "event", "uuid", "now")
CONTENT_ENCODING_HEADER = "content-encoding"


class SourceRef(msgspec.Struct, array_like=True, frozen=True):
    """Where a message came from: carried to the DLQ headers of every later stage."""

    topic: str
    partition: int
    offset: int


class Chunk(msgspec.Struct, frozen=True):
    """A validated, normalised piece, attributed to the team of its token."""

    team_id: int
    session_id: str
    window_id: str
    distinct_id: str
    chunk_id: str
    chunk_index: int
    chunk_count: int
    data: str
    compression: str
    producer_full_snapshot: bool | None

    @property
    def set_key(self) -> str:
        """Identity of the chunk set; team and session keep tenants apart."""
        return f"{self.team_id}:{self.session_id}:{self.chunk_id}"

    @property
    def session_key(self) -> str:
        return f"{self.team_id}:{self.session_id}"


class BatchStats(msgspec.Struct, frozen=True, array_like=True):
    """One batch's contribution to its session summary; sent, many to a record, to the
    partition of (team, session). A msgpack array on the wire: append fields with
    defaults, never reorder (sinks.clickhouse.summary says the same of the figures)."""

    team_id: int
    session_id: str
    chunk_id: str
    figures: SessionFigures

    @property
    def window_id(self) -> str:
        return self.figures.window_ids[0] if self.figures.window_ids else ""


_stats_encoder = msgspec.msgpack.Encoder()
_stats_decoder = msgspec.msgpack.Decoder(list[BatchStats])


def encode_stats(batches: Sequence[BatchStats], max_bytes: int) -> list[bytes]:
    """Records of many batches' statistics, each at most `max_bytes` unless one batch's
    statistics alone are larger: one record per decoded batch cost a produce request, a
    Faust event and a window write each."""
    records: list[bytes] = []
    group: list[msgspec.Raw] = []
    size = 0
    for stats in batches:
        item = _stats_encoder.encode(stats)
        if group and size + len(item) > max_bytes:
            records.append(_stats_encoder.encode(group))
            group, size = [], 0
        group.append(msgspec.Raw(item))
        size += len(item)
    if group:
        records.append(_stats_encoder.encode(group))
    return records


def decode_stats(raw: bytes) -> list[BatchStats]:
    """A statistics record, also one written by the previous layout (streams.legacy)."""
    try:
        return _stats_decoder.decode(raw)
    except msgspec.ValidationError:
        return [_converted(old) for old in _legacy_decoder.decode(raw)]


# Statistics records in the layout before the summary was declared once (replay-ingest
# up to 2026-11): they may still be in the statistics topic when a worker of this
# version starts, so they are converted rather than dead-lettered. Remove once no worker
# of that version runs and its topic has turned over.


class _LegacySummary(msgspec.Struct, frozen=True, array_like=True):
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


class _LegacyBatchStats(msgspec.Struct, frozen=True, array_like=True):
    team_id: int
    session_id: str
    window_id: str
    distinct_id: str
    chunk_id: str
    message_count: int
    size: int
    retention_days: int
    summary: _LegacySummary


_legacy_decoder = msgspec.msgpack.Decoder(list[_LegacyBatchStats])


_LEGACY_NAMES = {
    "first_timestamp": "min_first_timestamp",
    "last_timestamp": "max_last_timestamp",
    "urls": "all_urls",
}


def _converted(old: _LegacyBatchStats) -> BatchStats:
    summary = msgspec.structs.asdict(old.summary)
    values = {_LEGACY_NAMES.get(name, name): value for name, value in summary.items()}
    values |= {
        "distinct_id": old.distinct_id,
        "size": old.size,
        "message_count": old.message_count,
        "window_ids": [old.window_id] if old.window_id else [],
        "retention_days": old.retention_days,
    }
    figures = SessionFigures(**values)
    return BatchStats(old.team_id, old.session_id, old.chunk_id, figures)
