"""The executor: carries out every request not done, each step idempotent, so that a
rerun after a kill -9 anywhere converges and the proof still counts the whole request.

Per request:

1. ``requested``: wait until ``settle_seconds`` (2 x REPLAY_ERASURE_POLL_SECONDS on a
   worker) after the request, so every worker has loaded its tombstone and no batch
   taken after it is written; then resolve the sessions (those asked for; a person's:
   every session whose summary, raw rows or performance entries carry the
   distinct_id; a date's: every session that started before it), count what each tier
   holds of them and list their S3 objects, and record all of it (``running``) before
   deleting anything.
2. Sweep: delete the S3 objects (the keys the archive index knows, and any object under
   a session's key prefix: an upload a crash left unindexed), then the rows of
   ``session_recording_events``, ``session_replay_events``, ``performance_events``
   (and a person's entries of no session), ``session_recording_gaps`` and last the
   archive index (so a crash before it leaves the keys findable). Lightweight deletes:
   gone from every read at once, physically removed when the parts next merge.
3. Wait until ``settle_seconds`` after ``running`` (the workers now hold the sessions
   found too), sweep again: a batch that was in flight in a take when the tombstone
   loaded is written and deleted now, counted as late.
4. Record ``done``: per tier the count at resolution plus the late ones, every S3 key
   deleted, and the time.

A resumed request redoes steps 2-4 from its ``running`` row: what a killed sweep had
already deleted was counted at resolution. (Late rows deleted by a sweep killed after
its delete are not counted: the sweep counts before it deletes.)

ClickHouse calls block: the executor runs on a loop of its own, in a thread of the
worker (erasure.schedule) or in the CLI.
"""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

from erasure.request import Deletion, now_ms
from sinks.clickhouse import erasure as statements
from sinks.clickhouse.queries import Insert, Query, execute, fetch
from sinks.ids import is_safe_id
from sinks.s3 import ObjectStore
from sinks.s3_keys import session_key

log = logging.getLogger(__name__)

# Test hook: SIGKILL ourselves right after this step ("running", "delete" or "sweep").
CRASH_AFTER = os.environ.get("REPLAY_ERASURE_CRASH_AFTER", "")
S3_TIER = "s3_objects"
# One read: column names and rows (a client's, or through the worker's /api/sql).
RunQuery = Callable[[Query], tuple[list[str], Sequence[Sequence[Any]]]]
Write = Callable[[Query | Insert], None]  # an insert or a delete


@dataclass(frozen=True)
class Found:
    """What a request's sessions hold in every tier: rows per table and object keys."""

    counts: dict[str, int]
    keys: list[str]

    @property
    def removed(self) -> dict[str, int]:
        return {**self.counts, S3_TIER: len(self.keys)}


@dataclass
class Executor:
    """Carries out erasure requests (see the module docstring). Reads and writes are
    functions, so that a dry run can resolve through a worker that owns chDB (`reads`)."""

    query: RunQuery
    write: Write
    store: ObjectStore
    settle_seconds: float  # 0 only where no worker can write (the CLI owning chDB)

    @classmethod
    def on(cls, client: Any, store: ObjectStore, settle_seconds: float) -> Executor:
        """An executor reading and writing through one clickhouse-connect client."""
        return cls(partial(fetch, client), partial(execute, client), store, settle_seconds)

    def load(self, team_id: int, deletion_id: str) -> Deletion | None:
        """The request's latest version, or None."""
        columns, rows = self.query(statements.deletion(team_id, deletion_id))
        return Deletion.from_row(dict(zip(columns, rows[0], strict=True))) if rows else None

    def record(self, deletion: Deletion) -> Deletion:
        self.write(deletion.insert())
        return deletion

    async def run_pending(self) -> list[Deletion]:
        """Carry out every request not done, oldest first; one failing is logged and
        left for the next run, the others go on. Returns those completed."""
        columns, rows = self.query(statements.unfinished_deletions())
        done = []
        for row in rows:
            pending = Deletion.from_row(dict(zip(columns, row, strict=True)))
            try:
                done.append(await self.carry_out(pending))
            except Exception as exc:
                log.warning("erasure %s unfinished, resumed next run: %s", pending.deletion_id, exc)
        return done

    async def carry_out(self, deletion: Deletion) -> Deletion:
        """Steps 1-4 of the module docstring, from whatever state the request is in."""
        if deletion.state == "done":
            return deletion
        if deletion.state == "requested":
            _wait_until(deletion.requested_ms + self.settle_seconds * 1000)
            deletion = await self.resolve(deletion)
            _crash_point("running")
        await self.sweep(deletion)
        _crash_point("sweep")
        _wait_until(deletion.version_ms + self.settle_seconds * 1000)
        late = await self.sweep(deletion)
        removed = {t: deletion.removed.get(t, 0) + late.removed.get(t, 0) for t in late.removed}
        keys = tuple(dict.fromkeys([*deletion.s3_keys, *late.keys]))
        finished = deletion.next(state="done", removed=removed, s3_keys=keys)
        finished = self.record(replace(finished, completed_ms=finished.version_ms))
        log.info(
            "erasure %s of team %d done: %d session(s), removed %s",
            finished.deletion_id,
            finished.team_id,
            len(finished.sessions),
            finished.removed,
        )
        return finished

    def sessions_of(self, deletion: Deletion) -> list[str]:
        """The sessions a request erases, as stored now."""
        if deletion.kind == "session":
            return list(deletion.session_ids)
        if deletion.kind == "person":
            query = statements.sessions_of_person(deletion.team_id, deletion.distinct_id)
        else:
            query = statements.sessions_before(deletion.team_id, deletion.before_ms)
        return [str(row[0]) for row in self.query(query)[1]]

    async def find(self, deletion: Deletion, sessions: list[str]) -> Found:
        """What the sessions hold now, per tier, and their objects."""
        columns, rows = self.query(
            statements.tier_counts(deletion.team_id, sessions, deletion.person)
        )
        counts = {c: int(v) for c, v in zip(columns, rows[0], strict=True)}
        return Found(counts, await self.object_keys(deletion.team_id, sessions))

    async def preview(self, deletion: Deletion) -> tuple[list[str], Found]:
        """What the request would erase now (a dry run; step 1 without its record)."""
        sessions = self.sessions_of(deletion)
        return sessions, await self.find(deletion, sessions)

    async def resolve(self, deletion: Deletion) -> Deletion:
        """Step 1: the sessions, their counts and objects, recorded as ``running``."""
        sessions, found = await self.preview(deletion)
        keys = tuple(found.keys)
        running = deletion.next(
            state="running", sessions=tuple(sessions), removed=found.removed, s3_keys=keys
        )
        return self.record(running)

    async def sweep(self, deletion: Deletion) -> Found:
        """Delete what the request's sessions hold now, objects first; what was there."""
        sessions = list(deletion.sessions)
        found = await self.find(deletion, sessions)
        for key in found.keys:
            await self.store.delete(key)
        for table in statements.SESSION_TABLES:
            if found.counts.get(table):
                query = statements.delete_sessions(
                    table, deletion.team_id, sessions, deletion.person
                )
                self.write(query)
                _crash_point("delete")
        return found

    async def object_keys(self, team_id: int, sessions: list[str]) -> list[str]:
        """Every object of the sessions: the indexed ones, and whatever lies under each
        session's key prefix (where its indexed objects are, and where the spill would
        put part 0: an upload a crash left unindexed)."""
        if not sessions:
            return []
        _, rows = self.query(statements.archived_keys(team_id, sessions))
        indexed = [str(row[0]) for row in rows]
        _, starts = self.query(statements.session_starts(team_id, sessions))
        prefixes = {_session_prefix(key) for key in indexed}
        for session_id, start_ms in starts:
            if not is_safe_id(session_id):
                continue  # no key was ever made of it
            base = session_key(self.store.prefix, team_id, str(session_id), _utc(int(start_ms)))
            prefixes.add(_session_prefix(base))
        listed = [key for prefix in sorted(prefixes) for key in await self.store.keys(prefix)]
        return sorted({*indexed, *listed})


def _session_prefix(key: str) -> str:
    """What every object of the key's session starts with: ``.../session_id=<id>.``
    (an id has no dot; sinks.s3_keys)."""
    head, _, tail = key.rpartition("/session_id=")
    return f"{head}/session_id={tail.split('.', 1)[0]}."


def _utc(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def _wait_until(moment_ms: float) -> None:
    """Block until the moment (epoch ms): the workers' tombstones settle meanwhile."""
    delay = (moment_ms - now_ms()) / 1000
    if delay > 0:
        time.sleep(delay)


def _crash_point(step: str) -> None:
    if step == CRASH_AFTER:
        os.kill(os.getpid(), signal.SIGKILL)
