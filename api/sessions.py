"""The session summary and the network entries of a team's sessions, as JSON, and the
share links that open a session without the read key."""

from __future__ import annotations

import time

from faust.web import Request, Response

from api.erasure import erase
from api.http import json_response
from api.params import parse_expires, parse_limit, parse_session_id, parse_time
from api.share import share_url, sign
from api.team import SharedSessionView, TeamView
from sinks.clickhouse.player import session_known
from sinks.clickhouse.queries import network_query, session_query, sessions_query

NO_SUCH_SESSION = {"error": "no such session"}


class SessionsView(TeamView):
    """``GET /api/teams/{team_id}/sessions?since=&until=&limit=``: newest first."""

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        query = request.query
        since = parse_time(query.get("since"), "since")
        until = parse_time(query.get("until"), "until")
        limit = parse_limit(query.get("limit"))
        rows = await self.api.reader.records(sessions_query(team, since, until, limit))
        return json_response(self, {"sessions": rows})


class SessionView(SharedSessionView):
    """``GET /api/teams/{team_id}/sessions/{session_id}``: one summary, or 404; a share
    link's token opens it as the read key does. ``DELETE`` erases the session, for the
    team's write key (api.erasure)."""

    async def delete(self, request: Request, team_id: str, **params: str) -> Response:
        return await self.handle(request, team_id, params, self.erase)

    async def erase(self, request: Request, team: int, params: dict[str, str]) -> Response:
        session = parse_session_id(params["session_id"])
        return await erase(self, request, team, {"session_ids": [session]})

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Response:
        rows = await self.api.reader.records(session_query(team, session))
        if not rows:
            return json_response(self, NO_SUCH_SESSION, 404)
        return json_response(self, rows[0])


class NetworkView(TeamView):
    """``GET /api/teams/{team_id}/sessions/{session_id}/network``: performance entries."""

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        query = network_query(team, parse_session_id(params["session_id"]))
        return json_response(self, {"entries": await self.api.reader.records(query)})


class ShareView(TeamView):
    """``GET|POST /api/teams/{team_id}/sessions/{session_id}/share?expires=DURATION``: a
    link to the session's player page, valid for DURATION (api.share.parse_duration;
    default REPLAY_SHARE_EXPIRES_SECONDS): ``{"url", "token", "expires_at"}``, or 404.
    The read key only: a share link must not mint more links."""

    async def post(self, request: Request, team_id: str, **params: str) -> Response:
        return await self.get(request, team_id, **params)

    async def answer(self, request: Request, team: int, **params: str) -> Response:
        session = parse_session_id(params["session_id"])
        seconds = parse_expires(request.query.get("expires"), self.api.share_expires_seconds)
        if not await self.api.reader.records(session_known(team, session)):
            return json_response(self, NO_SUCH_SESSION, 404)
        expires_at = int(time.time()) + seconds
        token = sign(self.api.share_key, team, session, expires_at)
        url = share_url(self.api.base_url, team, session, token)
        return json_response(self, {"url": url, "token": token, "expires_at": expires_at})
