"""Read a session back, hot or cold: its archived parts and its hot remainder merged in
timestamp order, each event once (see the package docstring for what a session is and
for the archive's line format).

Memory is bounded by the number of parts (a read of each object, one handoff of hot
events and one page of raw rows), not by the session. A read that runs while the spill
moves rows of the same session may miss those rows, never show them twice.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing
from functools import lru_cache
from typing import NamedTuple

import msgspec

from retention.index import RunQuery, archived_parts
from sinks.clickhouse.queries import hot_page
from sinks.s3 import ObjectStore

PAGE_ROWS = 64
HANDOFF_BYTES = 256 * 1024  # hot events handed from the reading thread to the loop at a time
UNKNOWN_WINDOW = ""  # the window of an event read from an object of the older, bare format

# One event of a session: (timestamp ms, window_id, the rrweb event's JSON on one line).
Event = tuple[int, str, bytes]


class Batch(NamedTuple):
    """A raw row as the readers need it: its first timestamp (ms), its window and the
    JSON array of its events, as ingested."""

    first: int
    window_id: str
    events: str


class _Head(msgspec.Struct, gc=False):
    timestamp: int | float


_heads = msgspec.json.Decoder(list[_Head])
_head = msgspec.json.Decoder(_Head)
_raws = msgspec.json.Decoder(list[msgspec.Raw])
_pair = msgspec.json.Decoder(tuple[str, _Head])
_raw_pair = msgspec.json.Decoder(tuple[str, msgspec.Raw])


@lru_cache(maxsize=4096)
def _prefix(window_id: str) -> bytes:
    """``[`` + the window_id as a JSON string + ``,``: a session has a few windows, so
    each is encoded once, not once per event."""
    return b"[" + msgspec.json.encode(window_id) + b","


def windowed_line(window_id: str, event: bytes) -> bytes:
    """The archive's line of an event: ``["<window_id>",<event>]`` (PostHog's blob form)."""
    return _prefix(window_id) + event + b"]"


def parse_line(line: bytes) -> Event:
    """An archived line back into its event. A line that starts with ``{`` is a bare
    event, as objects written before the windowed format hold them: its window is
    unknown (UNKNOWN_WINDOW). The event bytes of a windowed line are sliced out, not
    re-encoded, when the line is in the form `windowed_line` writes."""
    if line[:1] == b"{":
        return int(_head.decode(line).timestamp), UNKNOWN_WINDOW, line
    window_id, head = _pair.decode(line)
    prefix = _prefix(window_id)
    if line.startswith(prefix) and line.endswith(b"]"):
        event = line[len(prefix) : -1]
    else:  # valid JSON written some other way (spaces, escapes): decode the event out
        event = bytes(_raw_pair.decode(line)[1])
    return int(head.timestamp), window_id, event


def _one_line(text: bytes) -> bytes:
    """The batch with every raw CR and LF turned into a space. JSON strings cannot hold
    raw control characters, so in a valid batch these bytes are whitespace between
    tokens, which msgspec.Raw keeps inside an event: left in, they would cut the event's
    line in two. Only batches that have one pay for the copy."""
    if b"\n" in text or b"\r" in text:
        return text.replace(b"\n", b" ").replace(b"\r", b" ")
    return text


def ordered_events(batches: Iterable[Batch], after_ms: int | None = None) -> Iterator[Event]:
    """Events of batches given in first-timestamp order, merged into timestamp order,
    each on one line; with `after_ms`, only those at or after it.

    Only batches that can still hold the next event are in memory: an event is emitted
    once no batch left to read starts before it (ties: batch order, then position).
    """
    heap: list[tuple[int, int, int, str, bytes]] = []
    source = iter(batches)
    upcoming = next(source, None)
    number = 0
    while True:
        while upcoming is not None and (not heap or upcoming.first <= heap[0][0]):
            text = _one_line(upcoming.events.encode())
            for index, (head, raw) in enumerate(
                zip(_heads.decode(text), _raws.decode(text), strict=True)
            ):
                timestamp = int(head.timestamp)
                if after_ms is None or timestamp >= after_ms:
                    heapq.heappush(heap, (timestamp, number, index, upcoming.window_id, bytes(raw)))
            number += 1
            upcoming = next(source, None)
        if not heap:  # the source is exhausted too: the loop above reads until one is in
            return
        timestamp, _, _, window_id, event = heapq.heappop(heap)
        yield timestamp, window_id, event


def hot_batches(
    run: RunQuery,
    team_id: int,
    session_id: str,
    upto: int = -1,
    seen: list[str] | None = None,
    after_ms: int | None = None,
) -> Iterator[Batch]:
    """A session's raw rows not in parts 0..upto, a page at a time, in first-timestamp
    order; with `after_ms`, only rows that reach it (last timestamp at or after it).
    Their chunk_ids are appended to `seen`."""
    after = (-1, "")
    while True:
        _, rows = run(hot_page(team_id, session_id, upto, after, PAGE_ROWS, after_ms))
        for ts, chunk_id, window_id, data in rows:
            if seen is not None:
                seen.append(str(chunk_id))
            yield Batch(int(ts), str(window_id), data)
        if len(rows) < PAGE_ROWS:
            return
        after = (int(rows[-1][0]), str(rows[-1][1]))


async def session_lines(
    run: RunQuery,
    store: ObjectStore,
    team_id: int,
    session_id: str,
    *,
    windowed: bool = False,
    after_ms: int | None = None,
) -> AsyncGenerator[bytes, None]:
    """A session's events as JSON lines: its archived parts and its hot remainder, merged
    in timestamp order, each event once, in memory bounded by the number of parts (one
    read of each object, one handoff and one page of raw rows), not by the session.

    A line is the bare event, or with `windowed` the event with its browser window,
    ``["<window_id>",<event>]`` (window "" when an older object did not keep it), for a
    player that plays each window apart. With `after_ms`, only events at or after it:
    the hot rows that end before it are not read at all, the parts' lines are skipped
    as they stream.
    """
    parts = await asyncio.to_thread(archived_parts, run, team_id, session_id)
    upto = parts[-1].part if parts else -1
    sources = [_part_events(store, p.key, after_ms) for p in parts]
    sources.append(_hot_events(run, team_id, session_id, upto, after_ms))
    line: Callable[[Event], bytes] = _windowed if windowed else _bare
    async for event in merge_events(sources):
        yield line(event)


def _bare(event: Event) -> bytes:
    return event[2]


def _windowed(event: Event) -> bytes:
    return windowed_line(event[1], event[2])


async def _part_events(
    store: ObjectStore, key: str, after_ms: int | None
) -> AsyncGenerator[Event, None]:
    """An archived part's events in order (either line format), from `after_ms` on; the
    object's body is released as soon as this is closed."""
    async with aclosing(store.read_lines(key)) as lines:
        async for line in lines:
            event = parse_line(line)
            if after_ms is None or event[0] >= after_ms:
                yield event


async def _hot_events(
    run: RunQuery, team_id: int, session_id: str, upto: int, after_ms: int | None
) -> AsyncGenerator[Event, None]:
    """Raw rows' events in order; the pages are read and merged in a worker thread, which
    hands over HANDOFF_BYTES of events at a time and reads on only when asked."""
    events = ordered_events(hot_batches(run, team_id, session_id, upto, None, after_ms), after_ms)
    while chunk := await asyncio.to_thread(_take, events, HANDOFF_BYTES):
        for event in chunk:
            yield event


def _take(events: Iterator[Event], limit: int) -> list[Event]:
    taken: list[Event] = []
    size = 0
    for event in events:
        taken.append(event)
        size += len(event[2])
        if size >= limit:
            break
    return taken


async def merge_events(
    sources: Sequence[AsyncGenerator[Event, None]],
) -> AsyncGenerator[Event, None]:
    """Events of sources, each in timestamp order, merged in timestamp order (ties:
    source order, then position). Holds one event per source."""
    heap: list[tuple[int, int, Event]] = []

    async def pull(index: int) -> None:
        event = await anext(sources[index], None)
        if event is not None:
            heapq.heappush(heap, (event[0], index, event))

    try:
        for index in range(len(sources)):
            await pull(index)
        while heap:
            _, index, event = heapq.heappop(heap)
            yield event
            await pull(index)
    finally:
        for source in sources:
            await source.aclose()
