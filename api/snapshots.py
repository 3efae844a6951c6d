"""``GET /api/teams/{team_id}/sessions/{session_id}/snapshots``: a session's events as
JSON lines, one bare rrweb event per line, every browser window merged in timestamp
order, from ClickHouse or, once archived, from S3 (retention.read), streamed."""

from __future__ import annotations

from typing import Any

from faust.web import Request

from api.http import stream_found
from api.params import parse_session_id
from api.team import TeamView
from retention.read import session_lines


class SnapshotsView(TeamView):
    """The body is chunked, so a session of any size costs the worker bounded memory; a
    session without events is 404, sent before any body."""

    async def answer(self, request: Request, team: int, **params: str) -> Any:
        session = parse_session_id(params["session_id"])
        lines = session_lines(self.api.archive, self.api.store, team, session)
        return await stream_found(self, request, lines, "no such session")
