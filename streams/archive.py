"""Retention: spill sessions past their team's retention to S3, and read any session back.

Per session, in this order, each step idempotent so that a rerun after a crash at any
point converges without loss and without a second object (the key is deterministic):

1. upload its events, in timestamp order, as zstd JSON lines (sinks.s3), and verify;
2. record the object in ``session_recording_archive`` (state ``uploaded``) and mark the
   summary archived (a marker part with ``storage = 's3'``);
3. delete its raw rows from ``session_recording_events``;
4. record state ``complete``.

A session whose index says ``uploaded`` but has no raw rows left (a crash between 3 and
4) is completed after checking that its object is there; one with ``complete`` is never
archived again. If S3 fails, the spill stops before step 3 for that session.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import os
import signal
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

import metrics
from config.settings import Settings
from config.teams import TeamRegistry
from sinks.clickhouse import (
    ARCHIVE_PART,
    ARCHIVE_TABLE,
    SNAPSHOT_TABLE,
    SUMMARY_COLUMNS,
    SUMMARY_TABLE,
    SUMMARY_VIEW,
)
from sinks.s3 import ObjectStore, S3Unavailable, Uploaded, session_key
from streams.parse import ID_PATTERN
from streams.stats import NO_URL_TIMESTAMP

log = logging.getLogger(__name__)

Query = Callable[[str], tuple[list[str], Sequence[Sequence[Any]]]]
PAGE_ROWS = 64
# Test hook: SIGKILL ourselves right after this step ("upload" or "delete").
CRASH_AFTER = os.environ.get("REPLAY_SPILL_CRASH_AFTER", "")


class _Head(msgspec.Struct, gc=False):
    timestamp: int | float


_heads = msgspec.json.Decoder(list[_Head])
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


def _quote(session_id: str) -> str:
    if not ID_PATTERN.fullmatch(session_id):
        raise ValueError(f"session_id {session_id[:80]!r} is not a valid id")
    return f"'{session_id}'"


def _where(team_id: int, session_id: str) -> str:
    return f"team_id = {int(team_id)} AND session_id = {_quote(session_id)}"


def hot_batches(query: Query, team_id: int, session_id: str) -> Iterator[tuple[int, str]]:
    """(first timestamp ms, events JSON) of a session's raw rows, a page at a time."""
    after = "(-1, '')"
    while True:
        _, rows = query(
            "SELECT toUnixTimestamp64Milli(first_timestamp) AS ts, chunk_id, snapshot_data "
            f"FROM {SNAPSHOT_TABLE} FINAL WHERE {_where(team_id, session_id)} "
            f"AND (toUnixTimestamp64Milli(first_timestamp), chunk_id) > {after} "
            f"ORDER BY first_timestamp, chunk_id LIMIT {PAGE_ROWS}"
        )
        for ts, _, data in rows:
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
    _, rows = query(
        f"SELECT toString(state), key, bytes, etag FROM {ARCHIVE_TABLE} FINAL "
        f"WHERE {_where(team_id, session_id)}"
    )
    return (
        IndexEntry(str(rows[0][0]), str(rows[0][1]), int(rows[0][2]), str(rows[0][3]))
        if rows
        else None
    )


async def session_lines(
    query: Query, store: ObjectStore, team_id: int, session_id: str
) -> AsyncIterator[bytes]:
    """A session's events as JSON lines, from S3 once archived, else from ClickHouse."""
    entry = await asyncio.to_thread(index_entry, query, team_id, session_id)
    if entry is not None and await store.head(entry.key) is not None:
        async for line in store.read_lines(entry.key):
            yield line
        return
    lines = await asyncio.to_thread(
        lambda: list(ordered_events(hot_batches(query, team_id, session_id)))
    )
    for line in lines:
        yield line


@dataclass(frozen=True, slots=True)
class Candidate:
    team_id: int
    session_id: str
    distinct_id: str
    start: datetime
    end: datetime


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
        """Sessions past retention not yet archived, and archives left half-done."""
        cutoffs = [
            f"team_id = {team.team_id}, {_cutoff(now, team.retention_days)}"
            for team in self.registry.by_id.values()
            if team.retention_days
        ]
        default = _cutoff(now, self.settings.retention_days)
        cutoff = f"multiIf({', '.join(cutoffs)}, {default})" if cutoffs else default
        _, rows = self.query(
            f"SELECT team_id, session_id, distinct_id, start_time, end_time FROM {SUMMARY_VIEW} "
            f"WHERE (storage != 's3' AND end_time < {cutoff}) OR (team_id, session_id) IN "
            f"(SELECT team_id, session_id FROM {ARCHIVE_TABLE} FINAL WHERE state = 'uploaded') "
            "ORDER BY team_id, start_time, session_id"
        )
        return [Candidate(int(t), str(s), str(d), _utc(a), _utc(b)) for t, s, d, a, b in rows]

    async def spill_once(self, now: datetime | None = None) -> int:
        """Archive every candidate; returns how many sessions were completed."""
        await self.store.ensure_bucket()
        done = 0
        for candidate in await asyncio.to_thread(self.candidates, now or datetime.now(UTC)):
            if await self.archive(candidate):
                done += 1
        return done

    async def archive(self, c: Candidate) -> bool:
        entry = await asyncio.to_thread(index_entry, self.query, c.team_id, c.session_id)
        if entry is not None and entry.state == "complete":
            return False
        # once indexed, the key never changes (late data may move the session's start)
        key = (
            entry.key if entry else session_key(self.store.prefix, c.team_id, c.session_id, c.start)
        )
        _, rows = await asyncio.to_thread(
            self.query,
            f"SELECT count() FROM {SNAPSHOT_TABLE} FINAL WHERE {_where(c.team_id, c.session_id)}",
        )
        if int(rows[0][0]) == 0:
            return await self._finish_without_rows(c, entry)
        uploaded = await self._uploaded(c, key, entry)
        await asyncio.to_thread(self._record, c, uploaded, "uploaded")
        _crash_point("upload")
        await asyncio.to_thread(self._delete_rows, c)
        _crash_point("delete")
        await asyncio.to_thread(self._record, c, uploaded, "complete")
        metrics.SESSIONS_ARCHIVED.inc()
        log.info(
            "archived team %d session %s to %s (%d bytes)",
            c.team_id,
            c.session_id,
            key,
            uploaded.bytes,
        )
        return True

    async def _uploaded(self, c: Candidate, key: str, entry: IndexEntry | None) -> Uploaded:
        """The object for this session: the verified one from a previous run, or a new one."""
        if entry is not None:
            head = await self.store.head(key)
            if (
                head is not None
                and head["ContentLength"] == entry.bytes
                and head["ETag"] == entry.etag
            ):
                return Uploaded(key, entry.bytes, entry.etag, -1, "")
        lines = ordered_events(hot_batches(self.query, c.team_id, c.session_id))
        return await self.store.upload_lines(key, lines)

    async def _finish_without_rows(self, c: Candidate, entry: IndexEntry | None) -> bool:
        if entry is None:
            return False  # a summary without raw rows (never any, or already elsewhere)
        if await self.store.head(entry.key) is None:
            metrics.S3_FAILURES.labels("missing_object").inc()
            raise S3Unavailable(f"{entry.key} is indexed but missing; its rows are gone")
        uploaded = Uploaded(entry.key, entry.bytes, entry.etag, -1, "")
        await asyncio.to_thread(self._record, c, uploaded, "complete")
        return True

    def _record(self, c: Candidate, uploaded: Uploaded, state: str) -> None:
        where = _where(c.team_id, c.session_id)
        _, rows = self.query(f"SELECT event_count FROM {ARCHIVE_TABLE} FINAL WHERE {where}")
        events = uploaded.lines if uploaded.lines >= 0 else int(rows[0][0]) if rows else 0
        self.client.insert(
            ARCHIVE_TABLE,
            [
                [
                    c.team_id,
                    c.session_id,
                    state,
                    uploaded.key,
                    uploaded.bytes,
                    uploaded.etag,
                    uploaded.sha256,
                    events,
                    c.start,
                    c.end,
                ]
            ],
            column_names=[
                "team_id",
                "session_id",
                "state",
                "key",
                "bytes",
                "etag",
                "sha256",
                "event_count",
                "start_time",
                "end_time",
            ],
        )
        if state == "uploaded":
            self._mark_summary(c, uploaded.key)

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

    def _delete_rows(self, c: Candidate) -> None:
        self.client.command(
            f"DELETE FROM {SNAPSHOT_TABLE} WHERE {_where(c.team_id, c.session_id)}",
            settings={"lightweight_deletes_sync": 2, "mutations_sync": 2},
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
    """One spill with its own ClickHouse client and event loop (the worker's timer)."""
    from sinks.clickhouse import connect

    client = connect(settings.clickhouse_url)
    try:
        store = ObjectStore(settings.s3_url, settings.s3_endpoint_url)
        return asyncio.run(Spiller(settings, registry, client, store).spill_once())
    finally:
        client.close()
