"""From the validated pieces of one chunk set to one ClickHouse row. Pure."""

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


def decode_batch(
    pieces: Iterable[Chunk], max_decoded_bytes: int, retention_days: int = 0
) -> DecodedBatch:
    """Decode the pieces of one set, given in index order (read lazily, one at a time),
    and summarise: one row per chunk_id, and the batch's contribution to its session
    summary.

    `has_full_snapshot` comes from the events themselves (a type 2 event), never from
    the producer's flag, which older SDKs set wrongly.
    """
    iterator = iter(pieces)
    head = next(iterator)
    count = 0

    def datas() -> Iterator[str]:
        nonlocal count
        for chunk in itertools.chain((head,), iterator):
            count += 1
            yield chunk.data

    payload = decode_pieces(datas(), head.compression, max_decoded_bytes)
    summary = summarize_events(payload, head.window_id)
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Rejected("invalid_events", "decode", str(exc)) from None
    row = SnapshotRow(
        team_id=head.team_id,
        distinct_id=head.distinct_id,
        session_id=head.session_id,
        window_id=head.window_id,
        chunk_id=head.chunk_id,
        chunk_count=head.chunk_count,
        first_timestamp=summary.min_first_timestamp,
        last_timestamp=summary.max_last_timestamp,
        has_full_snapshot=summary.has_full_snapshot,
        event_count=summary.event_count,
        size=len(payload),
        snapshot_data=text,
    )
    figures = msgspec.structs.replace(
        summary,
        distinct_id=head.distinct_id,
        size=len(payload),
        message_count=count,
        retention_days=retention_days,
    )
    stats = BatchStats(head.team_id, head.session_id, head.chunk_id, figures)
    return DecodedBatch(row, stats)


def flag_disagrees(piece: Chunk, row: SnapshotRow) -> bool:
    """The producer sent a has_full_snapshot flag that the events contradict."""
    flag = piece.producer_full_snapshot
    return flag is not None and flag != row.has_full_snapshot


def row_values(row: SnapshotRow) -> tuple[object, ...]:
    """The row's values for SNAPSHOT_COLUMNS, taken by name."""
    return tuple(getattr(row, column) for column in SNAPSHOT_COLUMNS)
