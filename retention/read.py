"""Read a session back, hot or cold: its archived parts and its hot remainder merged in
timestamp order, each event once (see the package docstring for what a session is).

Memory is bounded by the number of parts (a read of each object, one handoff of hot
lines and one page of raw rows), not by the session. A read that runs while the spill
moves rows of the same session may miss those rows, never show them twice.
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import AsyncGenerator, Iterable, Iterator, Sequence

import msgspec

from retention.index import RunQuery, archived_parts
from sinks.clickhouse.queries import hot_page
from sinks.s3 import ObjectStore

PAGE_ROWS = 64
HANDOFF_BYTES = 256 * 1024  # hot lines handed from the reading thread to the loop at a time


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


def hot_batches(
    run: RunQuery, team_id: int, session_id: str, upto: int = -1, seen: list[str] | None = None
) -> Iterator[tuple[int, str]]:
    """(first timestamp ms, events JSON) of a session's raw rows not in parts 0..upto,
    a page at a time; their chunk_ids are appended to `seen`."""
    after = (-1, "")
    while True:
        _, rows = run(hot_page(team_id, session_id, upto, after, PAGE_ROWS))
        for ts, chunk_id, data in rows:
            if seen is not None:
                seen.append(str(chunk_id))
            yield int(ts), data
        if len(rows) < PAGE_ROWS:
            return
        after = (int(rows[-1][0]), str(rows[-1][1]))


async def session_lines(
    run: RunQuery, store: ObjectStore, team_id: int, session_id: str
) -> AsyncGenerator[bytes, None]:
    """A session's events as JSON lines: its archived parts and its hot remainder, merged
    in timestamp order, each event once, in memory bounded by the number of parts (one
    read of each object, one handoff and one page of raw rows), not by the session."""
    parts = await asyncio.to_thread(archived_parts, run, team_id, session_id)
    upto = parts[-1].part if parts else -1
    sources = [store.read_lines(p.key) for p in parts]
    sources.append(_hot_lines(run, team_id, session_id, upto))
    async for line in merge_lines(sources):
        yield line


async def _hot_lines(
    run: RunQuery, team_id: int, session_id: str, upto: int
) -> AsyncGenerator[bytes, None]:
    """Raw rows' events in order; the pages are read and merged in a worker thread, which
    hands over HANDOFF_BYTES of lines at a time and reads on only when asked."""
    lines = ordered_events(hot_batches(run, team_id, session_id, upto))
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
