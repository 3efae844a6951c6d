"""The decoder the stages share: from a complete batch (the pieces of a chunk set, or
one `$snapshot_items` message) to its row and statistics, within the time bounds and
with its team's retention, unless it was erased (streams.tombstones: checked once the
batch is decoded, so every rule applies, the `before` moment included). No I/O: the
stages (streams.stages) call it, the loop applies what it returns."""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import metrics
from config.settings import Settings
from config.teams import TeamRegistry
from streams.batches import DecodedBatch, build_batch, decode_batch, flag_disagrees, row_values
from streams.items import parse_items
from streams.models import Chunk
from streams.output import Original, Output, Row
from streams.parse import TimeBounds, parse_capture
from streams.tombstones import TombstoneHolder, count_dropped
from streams.topics import INGEST, ITEMS


@dataclass
class Decoder:
    """Decodes a complete batch into its row and statistics, within the time bounds."""

    settings: Settings
    registry: TeamRegistry
    tombstones: TombstoneHolder = field(default_factory=TombstoneHolder)

    @functools.cached_property
    def bounds(self) -> TimeBounds:
        s = self.settings
        return TimeBounds(s.max_future_skew_seconds * 1000, s.max_event_age_days * 86_400_000)

    def parse(self, raw: bytes | None) -> Chunk:
        return parse_capture(raw, self.registry, self.settings.max_message_bytes)

    def piece_erased(self, chunk: Chunk, stage: str) -> bool:
        """Whether a piece of a chunk set belongs to an erased session or person (then
        counted for `stage`). Its first timestamp is unknown before the set is decoded,
        so the `before` rule is left to decode()."""
        tombstones = self.tombstones.current
        if tombstones.erased(chunk.team_id, chunk.session_id, chunk.distinct_id):
            count_dropped(stage)
            return True
        return False

    def retention(self, team_id: int) -> int:
        return self.registry.retention_days(team_id, self.settings.retention_days)

    def decode(
        self,
        pieces: Iterable[Chunk],
        origin: tuple[Original, ...],
        now: float,
        stage: str = INGEST,
    ) -> Output:
        """A chunk set's pieces, in index order, to its row and statistics (nothing if
        erased: counted for `stage`)."""
        pieces = iter(pieces)
        head = next(pieces)
        chunks = itertools.chain((head,), pieces)
        retention = self.retention(head.team_id)
        decoded = decode_batch(chunks, self.settings.max_decoded_bytes, retention)
        out = self._output(decoded, origin, now, stage)
        if flag_disagrees(head, decoded.row):
            metrics.FULL_SNAPSHOT_FLAG_MISMATCH.labels(str(head.producer_full_snapshot)).inc()
        return out

    def decode_items(
        self, raw: bytes | None, content_encoding: bytes | None, origin: Original, now: float
    ) -> Output:
        """One `$snapshot_items` message to its row and statistics: one message is one
        batch (chunk_count 1, message_count 1)."""
        s = self.settings
        batch = parse_items(
            raw, content_encoding, self.registry, s.max_message_bytes, s.max_decoded_bytes
        )
        decoded = build_batch(
            batch.payload,
            batch.ids,
            chunk_count=1,
            message_count=1,
            retention_days=self.retention(batch.ids.team_id),
        )
        return self._output(decoded, (origin,), now, ITEMS)

    def _output(
        self, decoded: DecodedBatch, origin: tuple[Original, ...], now: float, stage: str
    ) -> Output:
        row, stats = decoded
        erased = self.tombstones.current.erased
        if erased(row.team_id, row.session_id, row.distinct_id, row.first_timestamp):
            count_dropped(stage)
            return Output()
        self.bounds.check(row.first_timestamp, row.last_timestamp, now * 1000)
        values = row_values(row)
        return Output(
            rows=[Row(values, row.size, origin)], stats=[stats], newest_ms=row.last_timestamp
        )
