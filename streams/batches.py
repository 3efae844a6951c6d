"""From a decoded batch (the JSON text of its rrweb events) and its identity to one
ClickHouse row and the batch's statistics. Pure.

Both inputs end here: a chunk set of `session_recording_events` once its pieces are
joined and inflated (`decode_batch`), and one `$snapshot_items` message once its value
and its events are decoded (streams.items). One function (`build_batch`) makes the row
and the statistics of either, so the two can never count differently.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from typing import NamedTuple

import msgspec

from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SnapshotRow
from streams.decode import decode_pieces
from streams.dlq import Rejected
from streams.models import BatchStats, Chunk
from streams.stats import summarize_events


class DecodedBatch(NamedTuple):
    row: SnapshotRow
    stats: BatchStats


class BatchIds(NamedTuple):
    """Who a batch belongs to and its row identity (chunk_id), validated by the parser."""

    team_id: int
    distinct_id: str
    session_id: str
    window_id: str
    chunk_id: str


def build_batch(
    payload: bytes,
    ids: BatchIds,
    *,
    chunk_count: int,
    message_count: int,
    retention_days: int = 0,
) -> DecodedBatch:
    """The row and the statistics of one batch from the JSON text of its events.

    `has_full_snapshot` comes from the events themselves (a type 2 event), never from
    a producer's flag, which older SDKs set wrongly.
    """
    summary = summarize_events(payload, ids.window_id)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_events", "decode", str(exc)) from None
    row = SnapshotRow(
        team_id=ids.team_id,
        distinct_id=ids.distinct_id,
        session_id=ids.session_id,
        window_id=ids.window_id,
        chunk_id=ids.chunk_id,
        chunk_count=chunk_count,
        first_timestamp=summary.min_first_timestamp,
        last_timestamp=summary.max_last_timestamp,
        has_full_snapshot=summary.has_full_snapshot,
        event_count=summary.event_count,
        size=len(payload),
        snapshot_data=text,
    )
    figures = msgspec.structs.replace(
        summary,
        distinct_id=ids.distinct_id,
        size=len(payload),
        message_count=message_count,
        retention_days=retention_days,
    )
    stats = BatchStats(ids.team_id, ids.session_id, ids.chunk_id, figures)
    return DecodedBatch(row, stats)


def decode_batch(
    pieces: Iterable[Chunk], max_decoded_bytes: int, retention_days: int = 0
) -> DecodedBatch:
    """Decode the pieces of one set, given in index order (read lazily, one at a time),
    and summarise: one row per chunk_id, and the batch's contribution to its session
    summary."""
    iterator = iter(pieces)
    head = next(iterator)
    count = 0

    def datas() -> Iterator[str]:
        nonlocal count
        for chunk in itertools.chain((head,), iterator):
            count += 1
            yield chunk.data

    payload = decode_pieces(datas(), head.compression, max_decoded_bytes)
    ids = BatchIds(head.team_id, head.distinct_id, head.session_id, head.window_id, head.chunk_id)
    return build_batch(
        payload,
        ids,
        chunk_count=head.chunk_count,
        message_count=count,
        retention_days=retention_days,
    )


def flag_disagrees(piece: Chunk, row: SnapshotRow) -> bool:
    """The producer sent a has_full_snapshot flag that the events contradict."""
    flag = piece.producer_full_snapshot
    return flag is not None and flag != row.has_full_snapshot


def row_values(row: SnapshotRow) -> tuple[object, ...]:
    """The row's values for SNAPSHOT_COLUMNS, taken by name."""
    return tuple(getattr(row, column) for column in SNAPSHOT_COLUMNS)
