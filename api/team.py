"""What every view under ``/api/teams/{team_id}/`` does before its answer: the team's
read key, and errors as statuses (400, 401, 503), never a 500."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

from faust.web import Request, View

from api.http import UNAVAILABLE, StreamBroken, json_response
from api.params import BadRequest, authorized, parse_team_id
from api.reader import Reader, ThreadReader
from config.teams import TeamRegistry
from sinks.s3 import ObjectStore
from sinks.sql_guard import short_error

log = logging.getLogger(__name__)

UNAUTHORIZED = {"error": "missing or invalid read key for this team"}


@dataclass(frozen=True)
class TeamApi:
    """What the team views share; api.routes binds one to their classes."""

    registry: TeamRegistry
    reader: Reader  # the summary and network reads, on the event loop
    archive: ThreadReader  # a session's raw rows, read from worker threads
    store: ObjectStore  # a session's archived parts


class TeamView(View):
    """A GET of one team's data: `answer` runs once the request holds the team's read key.
    A wrong or missing key, or a team without one, is 401 (the team's existence is not
    revealed); a malformed parameter is 400; ClickHouse or S3 failing is 503."""

    api: ClassVar[TeamApi]

    async def answer(self, request: Request, team: int, **params: str) -> Any:
        raise NotImplementedError

    async def get(self, request: Request, team_id: str, **params: str) -> Any:
        try:
            team = parse_team_id(team_id)
            if not authorized(self.api.registry, team, request):
                return json_response(self, UNAUTHORIZED, 401)
            return await self.answer(request, team, **params)
        except BadRequest as exc:
            return json_response(self, {"error": str(exc)}, 400)
        except StreamBroken:
            raise
        except Exception as exc:  # ClickHouse or S3 down: say so briefly, never a 500
            log.warning("%s failed: %s", request.url.path, short_error(exc))
            return json_response(self, UNAVAILABLE, 503)
