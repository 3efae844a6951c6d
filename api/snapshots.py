"""``GET /api/teams/{team_id}/sessions/{session_id}/snapshots``: a session's events as
JSON lines, one bare rrweb event per line, every browser window merged in timestamp
order, from ClickHouse or, once archived, from S3 (retention.read), streamed."""

from __future__ import annotations

from typing import Any

from faust.web import Request

from api.http import json_response, stream_lines
from api.params import parse_session_id
from api.team import TeamView
from retention.read import session_lines


class SnapshotsView(TeamView):
    """The body is chunked, so a session of any size costs the worker bounded memory; a
    session without events is 404, sent before any body."""

    async def answer(self, request: Request, team: int, **params: str) -> Any:
        session = parse_session_id(params["session_id"])
        lines = aiter(session_lines(self.api.archive, self.api.store, team, session))
        try:
            first = await anext(lines, None)  # 404 must go out before any body
            if first is None:
                return json_response(self, {"error": "no such session"}, 404)
            return await stream_lines(request, lines, first)
        finally:
            close = getattr(lines, "aclose", None)  # release an S3 body early
            if close is not None:
                await close()
