"""S3 object keys of archived sessions: stable, documented, and made only of validated
parts. Part 0 of a session, written by the spill that first archives it:

    {prefix}/v1/team_id={team_id}/date={YYYY-MM-DD}/session_id={session_id}.jsonl.zst

and part n (n = 1, 2, ...), written by a later spill when rows arrived for the session
after it was archived (late batches, DLQ replays):

    {prefix}/v1/team_id={team_id}/date={YYYY-MM-DD}/session_id={session_id}.part-{n:06d}.jsonl.zst

The date is the session's start (UTC) when part 0 was written, and every later part
keeps it, so all objects of a session share the prefix ``.../session_id={session_id}.``
(an id never contains a dot). Each part holds the events of its own batches (chunk_ids,
disjoint from the other parts'), in timestamp order; the session is the merge of its
parts. Which parts exist is said by the archive index in ClickHouse, never by a
listing: an object without an index row is an unfinished upload that the next spill
overwrites. Every id is validated here again before it becomes a key part, whatever
the caller checked.

An object is zstd-compressed JSON lines, one event per line (each ending in LF), in
timestamp order (ties: batch order, then position in the batch). Each line is

    ["<window_id>",<event>]

the browser window's id as a JSON string, then the rrweb event's JSON as it was
ingested (PostHog's blob format), with any raw CR or LF inside the event (whitespace,
in valid JSON) turned into a space so that the event stays on its line. Objects
written by versions before this format hold the bare event on each line,

    {"type":3,"timestamp":1700000000000,"data":{...}}

and stay readable: a line that starts with ``{`` is a bare event whose window is
unknown (""). The index's sha256 and event_count are of the uncompressed lines as
written, in either format.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sinks.ids import is_safe_id

KEY_VERSION = "v1"
SUFFIX = ".jsonl.zst"


class UnsafeKey(ValueError):
    """An id that cannot become part of an S3 key."""


def session_key(prefix: str, team_id: int, session_id: str, start: datetime) -> str:
    """The stable object key of an archived session's part 0."""
    if isinstance(team_id, bool) or not isinstance(team_id, int) or team_id <= 0:
        raise UnsafeKey(f"team_id {team_id!r} is not a positive integer")
    if not is_safe_id(session_id):
        raise UnsafeKey(f"session_id {session_id[:80]!r} is not a safe id")
    day = start.astimezone(UTC).strftime("%Y-%m-%d")
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{base}{KEY_VERSION}/team_id={team_id}/date={day}/session_id={session_id}{SUFFIX}"


def part_key(base: str, part: int) -> str:
    """The key of part `part` of the session whose part 0 is at `base`."""
    if not base.endswith(SUFFIX) or part < 0:
        raise UnsafeKey(f"no part {part} for key {base[:200]!r}")
    return base if part == 0 else f"{base.removesuffix(SUFFIX)}.part-{part:06d}{SUFFIX}"
