"""The spill: move sessions past their team's retention from ClickHouse to S3.

Per candidate session (past retention with raw rows left, or with a part half-done),
each step idempotent, so that a rerun after a kill -9 anywhere converges without loss
and without an event twice:

1. finish the parts recorded ``uploaded``: check the object is there, delete the raw
   rows of archived chunk_ids (theirs, and late duplicates of earlier parts), record
   ``complete``;
2. stream the raw rows of the other chunk_ids, page by page in timestamp order, into
   the object of the next part (part 0, then 1, 2, ...), one ``["<window_id>",<event>]``
   line per event (the package docstring has the format), noting their chunk_ids, and
   verify it;
3. record the part (``uploaded``, with those chunk_ids), the session row, and mark the
   summary archived (a marker part with ``storage = 's3'``);
4. delete the raw rows of exactly the archived chunk_ids (rows that arrived during the
   upload stay, for the next run) and record ``complete``.

A crash before 3 leaves an object that nothing indexes: readers ignore it and the next
run overwrites it (same part number) with what is hot then. After 3, step 1 of the next
run finishes the part. Nothing is deleted before its object is verified and indexed.

A session that fails for good (an id that cannot form a key, an indexed object that is
missing, a permanent S3 refusal) is logged, counted in ``replay_spill_failures_total``,
reported by `spill_once`, and tried again by the next run; the others go on. S3 still
unavailable after the retry budget (``REPLAY_S3_RETRY_SECONDS``) ends the run early.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import metrics
from config.settings import Settings
from config.teams import TeamRegistry
from retention.index import Part, parts_of
from retention.read import hot_batches, ordered_events, windowed_line
from retention.report import ArchiveMissing, Candidate, SpillReport, failure_reason
from sinks.clickhouse import queries
from sinks.clickhouse.queries import Query
from sinks.ids import check_id
from sinks.s3 import ObjectStore, S3Unavailable
from sinks.s3_keys import part_key, session_key

log = logging.getLogger(__name__)

# Test hook: SIGKILL ourselves right after this step ("object", "upload" or "delete").
CRASH_AFTER = os.environ.get("REPLAY_SPILL_CRASH_AFTER", "")


@dataclass
class Spiller:
    """Moves sessions past retention from ClickHouse to S3 (see the module docstring)."""

    settings: Settings
    registry: TeamRegistry
    client: Any  # a clickhouse-connect client with write access
    store: ObjectStore

    def query(self, query: Query) -> tuple[list[str], Sequence[Sequence[Any]]]:
        return queries.fetch(self.client, query)

    def candidates(self, now: datetime) -> list[Candidate]:
        """Sessions past retention with raw rows left, and sessions with a part half-done."""
        days = {
            t.team_id: t.retention_days for t in self.registry.by_id.values() if t.retention_days
        }
        default = self.settings.retention_days
        _, rows = self.query(
            queries.spill_candidates(
                {team: _cutoff_ms(now, d) for team, d in days.items()},
                _cutoff_ms(now, default),
                # no row of a session past its cutoff starts after the latest cutoff
                _cutoff_ms(now, min([*days.values(), default])),
            )
        )
        return [Candidate(int(t), str(s), str(d), _utc(a), _utc(b)) for t, s, d, a, b in rows]

    async def spill_once(self, now: datetime | None = None) -> SpillReport:
        """Archive every candidate; a failing session is reported and the others go on."""
        await self.store.ensure_bucket()
        report = SpillReport()
        for candidate in await asyncio.to_thread(self.candidates, now or datetime.now(UTC)):
            try:
                if await self.archive(candidate):
                    report.archived += 1
            except S3Unavailable as exc:
                report.fail(candidate, "s3_unavailable", exc)
                break  # the rest wait for the next run rather than for S3, one by one
            except Exception as exc:
                report.fail(candidate, failure_reason(exc), exc)
        return report

    async def archive(self, c: Candidate) -> bool:
        """Move the session on (see the module docstring); True if a part completed."""
        check_id(c.session_id, "session_id")  # it becomes part of the object's key
        parts = await asyncio.to_thread(parts_of, self.query, c.team_id, c.session_id)
        finished = await self._finish(c, parts)
        upto = parts[-1].part if parts else -1
        if not await asyncio.to_thread(self._has_rows, c, upto):
            return finished > 0
        base = parts[0].key if parts else None
        key = base or session_key(self.store.prefix, c.team_id, c.session_id, c.start)
        uploaded = await self._upload(c, part_key(key, upto + 1), upto + 1)
        if uploaded is None:
            return finished > 0
        part, chunk_ids = uploaded
        await asyncio.to_thread(self._record_part, c, part, chunk_ids, "uploaded")
        _crash_point("upload")
        await asyncio.to_thread(self._delete_archived_rows, c)
        _crash_point("delete")
        await asyncio.to_thread(self._record_part, c, part, chunk_ids, "complete")
        metrics.SESSIONS_ARCHIVED.inc()
        log.info(
            "archived team %d session %s part %d to %s (%d events, %d bytes)",
            c.team_id,
            c.session_id,
            part.part,
            part.key,
            part.event_count,
            part.bytes,
        )
        return True

    async def _upload(self, c: Candidate, key: str, number: int) -> tuple[Part, list[str]] | None:
        """Stream the raw rows in no part yet into part `number`'s object; the part and
        the chunk_ids it holds, or None if the rows went meanwhile (the object is then
        an orphan that a later run overwrites)."""
        seen: list[str] = []
        events = ordered_events(hot_batches(self.query, c.team_id, c.session_id, number - 1, seen))
        lines = (windowed_line(window_id, event) for _, window_id, event in events)
        uploaded = await self.store.upload_lines(key, lines)
        _crash_point("object")
        if not seen:
            return None
        part = Part(
            number, "uploaded", key, uploaded.bytes, uploaded.etag, uploaded.sha256, uploaded.lines
        )
        return part, seen

    async def _finish(self, c: Candidate, parts: list[Part]) -> int:
        """Complete the parts left ``uploaded``, and drop the raw rows of archived chunk_ids
        (theirs, and late copies of earlier parts'); how many parts completed."""
        if not parts:
            return 0
        pending = [p for p in parts if p.state == "uploaded"]
        for part in pending:
            # verified by size and ETag before it was indexed; a restored copy has
            # another ETag, so the size says it is still the indexed object
            head = await self.store.head(part.key)
            if head is None or head["ContentLength"] != part.bytes:
                raise ArchiveMissing(f"{part.key} is indexed but missing (or of another size)")
        await asyncio.to_thread(self._delete_archived_rows, c)
        for part in pending:
            chunk_ids = await asyncio.to_thread(self._chunk_ids, c, part.part)
            await asyncio.to_thread(self._record_part, c, part, chunk_ids, "complete")
            metrics.SESSIONS_ARCHIVED.inc()
        return len(pending)

    def _chunk_ids(self, c: Candidate, part: int) -> list[str]:
        _, rows = self.query(queries.part_chunk_ids(c.team_id, c.session_id, part))
        return [str(chunk_id) for chunk_id in rows[0][0]] if rows else []

    def _has_rows(self, c: Candidate, upto: int) -> bool:
        _, rows = self.query(queries.hot_row_count(c.team_id, c.session_id, upto))
        return int(rows[0][0]) > 0

    def _record_part(self, c: Candidate, part: Part, chunk_ids: list[str], state: str) -> None:
        """Index the part in `state`, then the session row: totals of its parts,
        ``complete`` once every part is. The ``complete`` row replaces the ``uploaded``
        one when the table merges, so it carries the chunk_ids too."""
        session = {"team_id": c.team_id, "session_id": c.session_id}
        row = {**session, **dataclasses.asdict(part), "state": state, "chunk_ids": chunk_ids}
        queries.execute(self.client, queries.record_part(row))
        parts = parts_of(self.query, c.team_id, c.session_id)
        overall = "complete" if all(p.state == "complete" for p in parts) else "uploaded"
        totals = {
            **session,
            "state": overall,
            "key": parts[0].key,
            "bytes": sum(p.bytes for p in parts),
            "etag": parts[-1].etag,
            "sha256": parts[-1].sha256,
            "event_count": sum(p.event_count for p in parts),
            "start_time": c.start,
            "end_time": c.end,
        }
        queries.execute(self.client, queries.record_session(totals))
        if state == "uploaded":
            marker = queries.mark_summary_archived(
                team_id=c.team_id,
                session_id=c.session_id,
                distinct_id=c.distinct_id,
                start=c.start,
                end=c.end,
                key=parts[0].key,
            )
            queries.execute(self.client, marker)

    def _delete_archived_rows(self, c: Candidate) -> None:
        """Delete the raw rows whose chunk_id is in an indexed part, and only those."""
        _, rows = self.query(queries.archived_row_count(c.team_id, c.session_id))
        if int(rows[0][0]):
            queries.execute(self.client, queries.delete_archived_rows(c.team_id, c.session_id))


def _cutoff_ms(now: datetime, days: int) -> int:
    """The moment `days` before `now`, in epoch milliseconds."""
    return int((now - timedelta(days=days)).timestamp() * 1000)


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _crash_point(step: str) -> None:
    if step == CRASH_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
