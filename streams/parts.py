"""Window parts: the structs the `summarize` table stores, and counting one batch into a window.

Part and WindowState are stored in a changelog as msgpack arrays: field order is the
wire format. Append new fields with defaults at the end; never reorder or remove (the
figures, sinks.clickhouse.summary, follow the same rule).
"""

from __future__ import annotations

import enum
import hashlib
from dataclasses import dataclass

import msgspec

from sinks.clickhouse.schema import SUMMARY_COLUMNS
from sinks.clickhouse.summary import SessionFigures
from streams.figures import merge_figures
from streams.models import BatchStats

MAX_BATCHES_PER_PART = 1000  # ~9 KB of batch hashes per part
MAX_PARTS_PER_WINDOW = 6  # with the figures' caps, a window record stays well under 1 MB


class Part(msgspec.Struct, array_like=True):
    """One part of a window. This struct and WindowState are stored in a changelog as
    msgpack arrays: field order is the wire format. Append new fields with defaults at
    the end; never reorder or remove (the figures follow the same rule)."""

    part_id: str
    batches: list[int]  # batch_hash() of every chunk_id the part covers
    aggregate: SessionFigures
    updated_at: float
    flushed_version: int = 0
    closed_at: float | None = None

    @property
    def version(self) -> int:
        return len(self.batches)


class WindowState(msgspec.Struct, array_like=True):
    team_id: int
    session_id: str
    window_start: int
    partition: int
    parts: list[Part]


encode_window = msgspec.msgpack.Encoder().encode
decode_window = msgspec.msgpack.Decoder(WindowState).decode


def batch_hash(chunk_id: str) -> int:
    """A batch's identity in a part: 8 bytes whatever the length of its chunk_id."""
    return int.from_bytes(hashlib.blake2b(chunk_id.encode(), digest_size=8).digest(), "big")


class Tally(enum.Enum):
    """What counting one batch into its window did."""

    COUNTED = "counted"
    DUPLICATE = "duplicate"
    FULL = "full"  # the window holds MAX_PARTS_PER_WINDOW parts and none can take it
    TEAM_CAP = "team_cap"  # the team holds max_windows_per_team open windows here


def count_batch(window: WindowState, stats: BatchStats, now: float) -> Tally:
    """Add one batch to the window's open part (or a new part)."""
    mark = batch_hash(stats.chunk_id)
    if any(mark in part.batches for part in window.parts):
        return Tally.DUPLICATE
    part = window.parts[-1] if window.parts else None
    if part is None or part.closed_at is not None or part.version >= MAX_BATCHES_PER_PART:
        if len(window.parts) < MAX_PARTS_PER_WINDOW:
            window.parts.append(Part(stats.chunk_id, [mark], stats.figures, now))
            return Tally.COUNTED
        # at the part cap: reopen a closed part with room; its row is rewritten with a
        # higher version, which replaces the closed one (exact, as the part is complete)
        roomy = [p for p in window.parts if p.version < MAX_BATCHES_PER_PART]
        if not roomy:
            return Tally.FULL
        part = roomy[-1]
        part.closed_at = None
    part.batches.append(mark)
    part.aggregate = merge_figures(part.aggregate, stats.figures)
    part.updated_at = now
    return Tally.COUNTED


@dataclass(frozen=True, slots=True)
class PartRow:
    """A part to write to ClickHouse, and whether writing it closes it."""

    key: bytes
    team_id: int
    session_id: str
    window_start: int
    part: Part
    close: bool


def part_values(row: PartRow) -> tuple[object, ...]:
    """The part's row: its values for SUMMARY_COLUMNS, taken by name (nested structs as
    the plain sequences the ClickHouse client takes)."""
    figures = row.part.aggregate
    values = dict(zip(figures.__struct_fields__, msgspec.to_builtins(figures), strict=True))
    values |= {
        "team_id": row.team_id,
        "session_id": row.session_id,
        "window_start": row.window_start,
        "part_id": row.part.part_id,
        "version": row.part.version,
    }
    return tuple(values[column] for column in SUMMARY_COLUMNS)
