"""Erasure over HTTP, for the team's *write* key (``Authorization: Bearer <write_key>``):

* ``DELETE /api/teams/{team_id}/sessions/{session_id}``: erase one session (the route of
  its summary: api.sessions.SessionView answers the DELETE through `erase`);
* ``POST /api/teams/{team_id}/deletions`` with a JSON body of exactly one of
  ``{"session_ids": [...]}`` (at most erasure.request.MAX_SESSIONS), ``{"distinct_id":
  "..."}`` (every session of that person) or ``{"before": "2026-01-01"}`` (every session
  of the team that started before it; ISO 8601, UTC if naive);
* ``GET /api/teams/{team_id}/deletions/{deletion_id}``: the request and, once ``done``,
  its proof (counts removed per tier, the S3 keys deleted, when it completed).

A request is recorded (state ``requested``) before the answer, 202 ``{"deletion_id",
"state", "url"}``; the worker's leader carries it out (erasure.execute). The team's read
key is refused with 403 (it reads, it cannot erase); no key, a wrong one, another
team's write key or a team without a write key is 401. A body that is not one of the
above is 400, one over MAX_BODY_BYTES 413.
"""

from __future__ import annotations

from typing import Any

import msgspec
from faust.web import Request, Response

from api.http import json_response, read_body
from api.params import BadRequest, holds_key
from api.team import TeamRoute
from config.teams import TeamRegistry
from erasure.request import Deletion, InvalidRequest, new_request
from sinks.clickhouse.erasure import deletion
from sinks.clickhouse.queries import execute
from sinks.ids import is_safe_id

MAX_BODY_BYTES = 256 * 1024  # a thousand ids of 200 chars fit
NO_WRITE_KEY = {"error": "missing or invalid write key for this team"}
READ_KEY = {"error": "a read key cannot erase: use the team's write key"}
NO_SUCH_DELETION = {"error": "no such deletion"}


def write_refusal(registry: TeamRegistry, team_id: int, request: Request) -> tuple[int, Any] | None:
    """None if the request holds the team's write key, else the status and body."""
    team = registry.by_id.get(team_id)
    if team is not None and team.write_key and holds_key(request, team.write_key.encode()):
        return None
    if team is not None and team.read_key and holds_key(request, team.read_key.encode()):
        return 403, READ_KEY
    return 401, NO_WRITE_KEY


async def erase(view: TeamRoute, request: Request, team: int, asked: Any) -> Response:
    """Record the request `asked` for (erasure.request.new_request) once the write key
    is there: 202 and where to follow it."""
    refusal = write_refusal(view.api.registry, team, request)
    if refusal is not None:
        return await view.refuse(*refusal)
    try:
        recorded = new_request(team, asked, "api")
    except InvalidRequest as exc:
        raise BadRequest(str(exc)) from None
    await view.api.reader.run(lambda client: execute(client, recorded.insert()))
    path = f"/api/teams/{team}/deletions/{recorded.deletion_id}"
    body = {"deletion_id": recorded.deletion_id, "state": recorded.state, "url": path}
    return json_response(view, body, 202)


class DeletionsView(TeamRoute):
    """``POST /api/teams/{team_id}/deletions``: a request by sessions, person or date."""

    async def post(self, request: Request, team_id: str, **params: str) -> Any:
        return await self.handle(request, team_id, params, self.create)

    async def create(self, request: Request, team: int, params: dict[str, str]) -> Response:
        refusal = write_refusal(self.api.registry, team, request)
        if refusal is not None:  # before reading a body from whoever it is
            return await self.refuse(*refusal)
        raw = await read_body(request, MAX_BODY_BYTES)
        if raw is None:
            return await self.refuse(413, {"error": f"body over {MAX_BODY_BYTES} bytes"})
        try:
            asked = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            raise BadRequest("the body must be a JSON object") from None
        return await erase(self, request, team, asked)

    async def admit(self, request: Request, team: int, params: dict[str, str]) -> Any:
        return await self.refuse(405, {"error": "POST a request; GET .../deletions/{id}"})


class DeletionView(TeamRoute):
    """``GET /api/teams/{team_id}/deletions/{deletion_id}``: the request's latest state
    and, once done, its proof; 404 for an id the team never had."""

    async def admit(self, request: Request, team: int, params: dict[str, str]) -> Any:
        refusal = write_refusal(self.api.registry, team, request)
        if refusal is not None:
            return await self.refuse(*refusal)
        deletion_id = params["deletion_id"]
        if not is_safe_id(deletion_id):
            raise BadRequest("deletion_id is not a valid id")
        rows = await self.api.reader.records(deletion(team, deletion_id))
        if not rows:
            return await self.refuse(404, NO_SUCH_DELETION)
        return json_response(self, Deletion.from_row(rows[0]).proof())
