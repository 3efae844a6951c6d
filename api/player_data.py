"""What the player page reads, each for a share token of the session or the team's read
key (api.team.SharedSessionView):

* ``GET .../sessions/{session_id}/player``: the summary, the batches known missing
  (dead-lettered, expired chunk sets: ``session_recording_gaps``), and whether the
  session is live (a batch written within ``REPLAY_LIVE_WINDOW_SECONDS``, by the server's
  clock: a recording dated 2099 is not live for ever) with the cursor to follow it from.
* ``GET .../sessions/{session_id}/events?after=MS``: the events as JSON lines of
  ``[window_id, event]`` in timestamp order, hot or archived alike (retention.read),
  streamed: the page hands each chunk to the player as it arrives, so a large session
  starts playing once its first full snapshot is in, and the worker holds one page of
  rows whatever the session's size. ``after`` resumes from a moment.
* ``GET .../sessions/{session_id}/live?cursor=MS``: Server-Sent Events of the batches
  written after the cursor (one message per batch, its lines as ``data:`` lines),
  polled every ``REPLAY_LIVE_POLL_SECONDS``; at most ``REPLAY_MAX_LIVE_STREAMS`` at once
  (then 503); an ``end`` event once nothing arrived for the live window, and a stream
  lasts at most LIVE_MAX_SECONDS (the browser reconnects).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, cast

from aiohttp import web as aiohttp_web
from faust.web import Request

from api.http import json_response, stream_found
from api.params import parse_millis
from api.team import SharedSessionView, TeamApi
from retention.read import Batch, ordered_events, session_lines, windowed_line
from sinks.clickhouse.player import live_rows, session_activity, session_gaps
from sinks.clickhouse.queries import session_query

log = logging.getLogger(__name__)

LIVE_ROWS = 16  # batches one poll reads at most (it polls again at once when full)
LIVE_OVERLAP_MS = 5000  # rows written this close before the cursor are looked at again
LIVE_MAX_SECONDS = 3600
HEARTBEAT_SECONDS = 15


@dataclass(frozen=True)
class LiveSettings:
    window_seconds: int
    poll_seconds: float
    max_streams: int
    open: list[int] = field(default_factory=lambda: [0])  # streams open now (mutable cell)


@dataclass(frozen=True)
class PlayerApi(TeamApi):
    """What the player's views share: the team views' clients, where rrweb-player's
    assets are, and the live streams' settings."""

    player_dir: Path
    live: LiveSettings


class ManifestView(SharedSessionView):
    api: ClassVar[PlayerApi]

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Any:
        summaries = await self.api.reader.records(session_query(team, session))
        activity = await self.api.reader.records(session_activity(team, session))
        if not summaries and not activity[0]["batches"]:
            return json_response(self, {"error": "no such session"}, 404)
        gaps = await self.api.reader.records(session_gaps(team, session))
        newest, now = activity[0]["newest_ms"], activity[0]["now_ms"]
        live = bool(activity[0]["batches"]) and now - newest < self.api.live.window_seconds * 1000
        body = {
            "summary": summaries[0] if summaries else None,
            "gaps": gaps,
            "live": live,
            "live_cursor": newest,
        }
        return json_response(self, body)


class EventsView(SharedSessionView):
    api: ClassVar[PlayerApi]

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Any:
        after = parse_millis(request.query.get("after"), "after")
        lines = session_lines(
            self.api.archive, self.api.store, team, session, windowed=True, after_ms=after
        )
        return await stream_found(self, request, lines, "no events")


class LiveView(SharedSessionView):
    api: ClassVar[PlayerApi]

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Any:
        cursor = parse_millis(request.query.get("cursor"), "cursor") or 0
        live = self.api.live
        if live.open[0] >= live.max_streams:
            return json_response(self, {"error": "too many live streams, retry later"}, 503)
        live.open[0] += 1
        try:
            return await self._stream(cast(aiohttp_web.Request, request), team, session, cursor)
        finally:
            live.open[0] -= 1

    async def _stream(
        self, request: aiohttp_web.Request, team: int, session: str, cursor: int
    ) -> aiohttp_web.StreamResponse:
        response = aiohttp_web.StreamResponse(
            headers={
                "Content-Type": "text/event-stream",
                "Cache-Control": "no-store",
                "X-Accel-Buffering": "no",
            }
        )
        await response.prepare(request)
        follower = Follower(cursor)
        started = last_beat = last_new = time.monotonic()
        try:
            while time.monotonic() - started < LIVE_MAX_SECONDS:
                rows = await self.api.reader.records(
                    live_rows(team, session, follower.cursor - LIVE_OVERLAP_MS, LIVE_ROWS)
                )
                for message in follower.messages(rows):
                    await response.write(message)
                    last_new = last_beat = time.monotonic()
                if len(rows) == LIVE_ROWS:
                    continue  # more are waiting
                now = time.monotonic()
                if now - last_new > self.api.live.window_seconds:
                    await response.write(b"event: end\ndata: idle\n\n")
                    break
                if now - last_beat > HEARTBEAT_SECONDS:
                    await response.write(b": keep-alive\n\n")
                    last_beat = now
                await asyncio.sleep(self.api.live.poll_seconds)  # the poll interval
        except ConnectionError:
            pass  # the viewer went away
        except Exception as exc:  # storage failing mid-stream: the browser reconnects
            log.warning("live stream of %s/%s stopped: %s", team, session, exc)
        return response


@dataclass
class Follower:
    """Which batches a live stream has sent: each chunk_id once, although the overlap
    reads rows again (a duplicate insert gets a newer inserted_at and the same chunk_id).
    Only chunk_ids inside the overlap are kept, so memory stays bounded."""

    cursor: int
    sent: dict[str, int] = field(default_factory=dict)

    def messages(self, rows: list[dict[str, Any]]) -> list[bytes]:
        out = []
        for row in rows:
            inserted, chunk = int(row["inserted_ms"]), str(row["chunk_id"])
            self.cursor = max(self.cursor, inserted)
            if chunk in self.sent:
                continue
            self.sent[chunk] = inserted
            batch = Batch(0, str(row["window_id"]), str(row["snapshot_data"]))
            lines = (windowed_line(window, event) for _, window, event in ordered_events([batch]))
            out.append(b"".join(b"data: " + line + b"\n" for line in lines) + b"\n")
        floor = self.cursor - 2 * LIVE_OVERLAP_MS
        self.sent = {chunk: at for chunk, at in self.sent.items() if at >= floor}
        return out
