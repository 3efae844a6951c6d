"""The session summary and the network entries of a team's sessions, as JSON."""

from __future__ import annotations

from faust.web import Request, Response

from api.http import json_response
from api.params import parse_limit, parse_session_id, parse_time
from api.team import TeamView
from sinks.clickhouse.queries import network_query, session_query, sessions_query


class SessionsView(TeamView):
    """``GET /api/teams/{team_id}/sessions?since=&until=&limit=``: newest first."""

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        query = request.query
        since = parse_time(query.get("since"), "since")
        until = parse_time(query.get("until"), "until")
        limit = parse_limit(query.get("limit"))
        rows = await self.api.reader.records(sessions_query(team, since, until, limit))
        return json_response(self, {"sessions": rows})


class SessionView(TeamView):
    """``GET /api/teams/{team_id}/sessions/{session_id}``: one summary, or 404."""

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        session = parse_session_id(params["session_id"])
        rows = await self.api.reader.records(session_query(team, session))
        if not rows:
            return json_response(self, {"error": "no such session"}, 404)
        return json_response(self, rows[0])


class NetworkView(TeamView):
    """``GET /api/teams/{team_id}/sessions/{session_id}/network``: performance entries."""

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        query = network_query(team, parse_session_id(params["session_id"]))
        return json_response(self, {"entries": await self.api.reader.records(query)})
