"""Retention: spill sessions past their team's retention to S3, and read any session back.

A session is its archived *parts* (S3 objects, keys in sinks.s3) plus its *hot
remainder* (raw rows in ``session_recording_events``). Every part is indexed in
``session_recording_archive_parts`` with the chunk_ids whose events it holds; a chunk_id
is in at most one part, and a raw row whose chunk_id is in an indexed part is never
served (the spill deletes it, also when a duplicate of it arrives later: same events).
``session_recording_archive`` keeps one row per session (state, key of part 0, totals).

Per candidate session (past retention with raw rows left, or with a part half-done),
each step idempotent, so that a rerun after a kill -9 anywhere converges without loss
and without an event twice:

1. finish the parts recorded ``uploaded``: check the object is there, delete the raw
   rows of archived chunk_ids (theirs, and late duplicates of earlier parts), record
   ``complete``;
2. stream the raw rows of the other chunk_ids, page by page in timestamp order, into
   the object of the next part (part 0, then 1, 2, ...), noting their chunk_ids, and
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
import heapq
import logging
import os
import signal
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

import metrics
from config.settings import Settings
from config.teams import TeamRegistry
from sinks.clickhouse.schema import (
    ARCHIVE_PART,
    ARCHIVE_PARTS_TABLE,
    ARCHIVE_TABLE,
    SNAPSHOT_TABLE,
    SUMMARY_COLUMNS,
    SUMMARY_TABLE,
    SUMMARY_VIEW,
)
from sinks.s3 import ObjectStore, S3Rejected, S3Unavailable, UnsafeKey, part_key, session_key
from streams.parse import ID_PATTERN
from streams.stats import NO_URL_TIMESTAMP

log = logging.getLogger(__name__)

Query = Callable[[str], tuple[list[str], Sequence[Sequence[Any]]]]
PAGE_ROWS = 64
HANDOFF_BYTES = 256 * 1024  # hot lines handed from the reading thread to the loop at a time
# Test hook: SIGKILL ourselves right after this step ("object", "upload" or "delete").
CRASH_AFTER = os.environ.get("REPLAY_SPILL_CRASH_AFTER", "")

_PART_COLUMNS = ("team_id", "session_id", "part", "state", "key", "bytes", "etag", "sha256",
                 "event_count", "chunk_ids")  # fmt: skip
_SESSION_COLUMNS = ("team_id", "session_id", "state", "key", "bytes", "etag", "sha256",
                    "event_count", "start_time", "end_time")  # fmt: skip
_DELETE_SETTINGS = {
    "lightweight_deletes_sync": 2,
    "mutations_sync": 2,
    # the IN subquery reads the parts index: rows it names are archived on every replica
    "allow_nondeterministic_mutations": 1,
}


class _Head(msgspec.Struct, gc=False):
    timestamp: int | float


_heads = msgspec.json.Decoder(list[_Head])
_head = msgspec.json.Decoder(_Head)
_raws = msgspec.json.Decoder(list[msgspec.Raw])


def ordered_events(batches: Iterable[tuple[int, str]]) -> Iterator[bytes]:
    """Events of batches given in first-timestamp order, merged into timestamp order.

    Only batches that can still hold the next event are in memory: an event is emitted
    once no batch left to read starts before it (ties: batch order, then position).
    """
    heap: list[tuple[int, int, int, bytes]] = []
    source = iter(batches)
    upcoming = next(source, None)
    number = 0
    while upcoming is not None or heap:
        while upcoming is not None and (not heap or upcoming[0] <= heap[0][0]):
            text = upcoming[1].encode()
            for index, (head, raw) in enumerate(
                zip(_heads.decode(text), _raws.decode(text), strict=True)
            ):
                heapq.heappush(heap, (int(head.timestamp), number, index, bytes(raw)))
            number += 1
            upcoming = next(source, None)
        yield heapq.heappop(heap)[3]


def _quote(value: str) -> str:
    """A ClickHouse string literal of any text."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _where(team_id: int, session_id: str) -> str:
    if not ID_PATTERN.fullmatch(session_id):
        raise UnsafeKey(f"session_id {session_id[:80]!r} is not a valid id")
    return f"team_id = {int(team_id)} AND session_id = '{session_id}'"


def _not_archived(team_id: int, session_id: str, upto: int) -> str:
    """SQL condition: the row's chunk_id is in none of the session's parts 0..upto."""
    if upto < 0:
        return ""
    return (
        f" AND chunk_id NOT IN (SELECT arrayJoin(chunk_ids) FROM {ARCHIVE_PARTS_TABLE} "
        f"WHERE {_where(team_id, session_id)} AND part <= {int(upto)})"
    )


def hot_batches(
    query: Query, team_id: int, session_id: str, upto: int = -1, seen: list[str] | None = None
) -> Iterator[tuple[int, str]]:
    """(first timestamp ms, events JSON) of a session's raw rows not in parts 0..upto,
    a page at a time; their chunk_ids are appended to `seen`."""
    after = "(-1, '')"
    while True:
        _, rows = query(
            "SELECT toUnixTimestamp64Milli(first_timestamp) AS ts, chunk_id, snapshot_data "
            f"FROM {SNAPSHOT_TABLE} FINAL WHERE {_where(team_id, session_id)} "
            f"AND (toUnixTimestamp64Milli(first_timestamp), chunk_id) > {after}"
            f"{_not_archived(team_id, session_id, upto)} "
            f"ORDER BY first_timestamp, chunk_id LIMIT {PAGE_ROWS}"
        )
        for ts, chunk_id, data in rows:
            if seen is not None:
                seen.append(str(chunk_id))
            yield int(ts), data
        if len(rows) < PAGE_ROWS:
            return
        after = f"({int(rows[-1][0])}, {_quote(str(rows[-1][1]))})"


@dataclass(frozen=True, slots=True)
class IndexEntry:
    state: str
    key: str
    bytes: int
    etag: str


def index_entry(query: Query, team_id: int, session_id: str) -> IndexEntry | None:
    """The session's row in the archive index (written after its first part's row)."""
    _, rows = query(
        f"SELECT toString(state), key, bytes, etag FROM {ARCHIVE_TABLE} FINAL "
        f"WHERE {_where(team_id, session_id)}"
    )
    return (
        IndexEntry(str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), str(rows[0][3]))
        if rows
        else None
    )


@dataclass(frozen=True, slots=True)
class Part:
    part: int
    state: str
    key: str
    bytes: int
    etag: str
    sha256: str
    event_count: int


def parts_of(query: Query, team_id: int, session_id: str) -> list[Part]:
    """The session's indexed parts in order (a part's latest state: complete wins)."""
    _, rows = query(
        "SELECT part, toString(max(state)), any(key), any(bytes), any(etag), any(sha256), "
        f"any(event_count) FROM {ARCHIVE_PARTS_TABLE} WHERE {_where(team_id, session_id)} "
        "GROUP BY part ORDER BY part"
    )
    return [
        Part(int(p), str(s), str(k), int(b), str(e), str(h), int(n)) for p, s, k, b, e, h, n in rows
    ]


def archived_parts(query: Query, team_id: int, session_id: str) -> list[Part]:
    """Parts for readers: none until the session row exists (then the parts table does;
    a part indexed before its session row has all its raw rows still in place)."""
    if index_entry(query, team_id, session_id) is None:
        return []
    return parts_of(query, team_id, session_id)


async def session_lines(
    query: Query, store: ObjectStore, team_id: int, session_id: str
) -> AsyncGenerator[bytes, None]:
    """A session's events as JSON lines: its archived parts and its hot remainder, merged
    in timestamp order, each event once, in memory bounded by the number of parts (one
    read of each object, one handoff and one page of raw rows), not by the session."""
    parts = await asyncio.to_thread(archived_parts, query, team_id, session_id)
    upto = parts[-1].part if parts else -1
    sources = [store.read_lines(p.key) for p in parts]
    sources.append(_hot_lines(query, team_id, session_id, upto))
    async for line in merge_lines(sources):
        yield line


async def _hot_lines(
    query: Query, team_id: int, session_id: str, upto: int
) -> AsyncGenerator[bytes, None]:
    """Raw rows' events in order; the pages are read and merged in a worker thread, which
    hands over HANDOFF_BYTES of lines at a time and reads on only when asked."""
    lines = ordered_events(hot_batches(query, team_id, session_id, upto))
    while chunk := await asyncio.to_thread(_take, lines, HANDOFF_BYTES):
        for line in chunk:
            yield line


def _take(lines: Iterator[bytes], limit: int) -> list[bytes]:
    taken, size = [], 0
    for line in lines:
        taken.append(line)
        size += len(line)
        if size >= limit:
            break
    return taken


async def merge_lines(
    sources: Sequence[AsyncGenerator[bytes, None]],
) -> AsyncGenerator[bytes, None]:
    """Event lines of sources, each in timestamp order, merged in timestamp order (ties:
    source order, then position). Holds one line per source."""
    heap: list[tuple[int, int, bytes]] = []

    async def pull(index: int) -> None:
        line = await anext(sources[index], None)
        if line is not None:
            heapq.heappush(heap, (int(_head.decode(line).timestamp), index, line))

    try:
        for index in range(len(sources)):
            await pull(index)
        while heap:
            _, index, line = heapq.heappop(heap)
            yield line
            await pull(index)
    finally:
        for source in sources:
            await source.aclose()


@dataclass(frozen=True, slots=True)
class Candidate:
    team_id: int
    session_id: str
    distinct_id: str
    start: datetime
    end: datetime


class ArchiveMissing(RuntimeError):
    """A part is indexed but its object is not in S3."""


@dataclass(frozen=True, slots=True)
class SpillFailure:
    team_id: int
    session_id: str
    reason: str  # unsafe_id | missing_object | s3_rejected | s3_unavailable | internal_error
    error: str


@dataclass
class SpillReport:
    """What a spill run did: sessions whose archive moved on, and sessions that failed."""

    archived: int = 0
    failures: list[SpillFailure] = field(default_factory=list)

    def fail(self, c: Candidate, reason: str, exc: BaseException) -> None:
        metrics.SPILL_FAILURES.labels(reason).inc()
        failure = SpillFailure(c.team_id, c.session_id[:200], reason, str(exc)[:500])
        log.error(
            "spill of team %d session %r failed (%s), retried next run: %s",
            c.team_id,
            failure.session_id,
            reason,
            failure.error,
            exc_info=reason == "internal_error",
        )
        self.failures.append(failure)


def _reason(exc: Exception) -> str:
    if isinstance(exc, UnsafeKey):
        return "unsafe_id"
    if isinstance(exc, ArchiveMissing):
        return "missing_object"
    if isinstance(exc, S3Rejected):
        return "s3_rejected"
    return "internal_error"


@dataclass
class Spiller:
    """Moves sessions past retention from ClickHouse to S3 (see the module docstring)."""

    settings: Settings
    registry: TeamRegistry
    client: Any  # a clickhouse-connect client with write access
    store: ObjectStore

    def query(self, sql: str) -> tuple[list[str], Sequence[Sequence[Any]]]:
        result = self.client.query(sql)
        return list(result.column_names), list(result.result_rows)

    def candidates(self, now: datetime) -> list[Candidate]:
        """Sessions past retention with raw rows left, and sessions with a part half-done."""
        days = {team.team_id: team.retention_days for team in self.registry.by_id.values()}
        cutoffs = [f"team_id = {t}, {_cutoff(now, d)}" for t, d in days.items() if d]
        default = _cutoff(now, self.settings.retention_days)
        cutoff = f"multiIf({', '.join(cutoffs)}, {default})" if cutoffs else default
        # no row of a session past its cutoff starts after the latest cutoff of any team
        latest = _cutoff(now, min([d for d in days.values() if d] + [self.settings.retention_days]))
        _, rows = self.query(
            f"SELECT team_id, session_id, distinct_id, start_time, end_time FROM {SUMMARY_VIEW} "
            f"WHERE (end_time < {cutoff} AND (team_id, session_id) IN (SELECT team_id, "
            f"session_id FROM {SNAPSHOT_TABLE} WHERE first_timestamp < {latest})) "
            f"OR (team_id, session_id) IN (SELECT team_id, session_id FROM {ARCHIVE_PARTS_TABLE} "
            "GROUP BY team_id, session_id, part HAVING max(state) = 'uploaded') "
            "ORDER BY team_id, start_time, session_id"
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
                report.fail(candidate, _reason(exc), exc)
        return report

    async def archive(self, c: Candidate) -> bool:
        """Move the session on (see the module docstring); True if a part completed."""
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
        lines = ordered_events(hot_batches(self.query, c.team_id, c.session_id, number - 1, seen))
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
        _, rows = self.query(
            f"SELECT any(chunk_ids) FROM {ARCHIVE_PARTS_TABLE} "
            f"WHERE {_where(c.team_id, c.session_id)} AND part = {int(part)}"
        )
        return [str(chunk_id) for chunk_id in rows[0][0]] if rows else []

    def _has_rows(self, c: Candidate, upto: int) -> bool:
        where = _where(c.team_id, c.session_id) + _not_archived(c.team_id, c.session_id, upto)
        _, rows = self.query(f"SELECT count() FROM {SNAPSHOT_TABLE} WHERE {where}")
        return int(rows[0][0]) > 0

    def _record_part(self, c: Candidate, part: Part, chunk_ids: list[str], state: str) -> None:
        """Index the part in `state`, then the session row: totals of its parts,
        ``complete`` once every part is. The ``complete`` row replaces the ``uploaded``
        one when the table merges, so it carries the chunk_ids too."""
        row = [c.team_id, c.session_id, part.part, state, part.key, part.bytes, part.etag]
        row += [part.sha256, part.event_count, chunk_ids]
        self.client.insert(ARCHIVE_PARTS_TABLE, [row], column_names=list(_PART_COLUMNS))
        parts = parts_of(self.query, c.team_id, c.session_id)
        overall = "complete" if all(p.state == "complete" for p in parts) else "uploaded"
        total_bytes, events = sum(p.bytes for p in parts), sum(p.event_count for p in parts)
        row = [c.team_id, c.session_id, overall, parts[0].key, total_bytes, parts[-1].etag]
        row += [parts[-1].sha256, events, c.start, c.end]
        self.client.insert(ARCHIVE_TABLE, [row], column_names=list(_SESSION_COLUMNS))
        if state == "uploaded":
            self._mark_summary(c, parts[0].key)

    def _mark_summary(self, c: Candidate, key: str) -> None:
        """A marker part: storage s3, neutral for every aggregate of the summary view."""
        self.client.insert(
            SUMMARY_TABLE,
            [
                [
                    c.team_id,
                    c.session_id,
                    c.start,
                    ARCHIVE_PART,
                    1,
                    c.distinct_id,
                    c.start,
                    c.end,
                    "",
                    NO_URL_TIMESTAMP,
                    "s3",
                    key,
                ]
            ],
            # the identity and time columns, up to first_url_timestamp; the rest default
            column_names=[*SUMMARY_COLUMNS[:10], "storage", "archive_key"],
        )

    def _delete_archived_rows(self, c: Candidate) -> None:
        """Delete the raw rows whose chunk_id is in an indexed part, and only those."""
        where = _where(c.team_id, c.session_id)
        archived = (
            f"chunk_id IN (SELECT arrayJoin(chunk_ids) FROM {ARCHIVE_PARTS_TABLE} WHERE {where})"
        )
        _, rows = self.query(f"SELECT count() FROM {SNAPSHOT_TABLE} WHERE {where} AND {archived}")
        if int(rows[0][0]):
            self.client.command(
                f"DELETE FROM {SNAPSHOT_TABLE} WHERE {where} AND {archived}",
                settings=_DELETE_SETTINGS,
            )


def _cutoff(now: datetime, days: int) -> str:
    """SQL for the moment `days` before `now`."""
    millis = int((now - timedelta(days=days)).timestamp() * 1000)
    return f"fromUnixTimestamp64Milli({millis}, 'UTC')"


def _utc(value: Any) -> datetime:
    moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _crash_point(step: str) -> None:
    if step == CRASH_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)


def spill_in_thread(settings: Settings, registry: TeamRegistry) -> int:
    """One spill with its own ClickHouse client and event loop (the worker's timer);
    returns the sessions archived (failures are logged and counted by the run)."""
    from sinks.clickhouse.schema import connect

    client = connect(settings.clickhouse_url)
    try:
        store = ObjectStore(
            settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
        )
        report = asyncio.run(Spiller(settings, registry, client, store).spill_once())
        return report.archived
    finally:
        client.close()
