"""What every view under ``/api/teams/{team_id}/`` does before its answer: who may read
(the team's read key; for a session's shared views, a share link's token too), whether
the session asked for was erased (410, checked here once for every session view), and
errors as statuses (400, 401, 403, 410, 503), never a 500."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from faust.web import Request, Response, View

from api.http import UNAVAILABLE, StreamBroken, json_response
from api.params import BadRequest, authorized, parse_session_id, parse_team_id
from api.reader import Reader, ThreadReader
from api.share import ShareRefused, check
from config.teams import TeamRegistry
from metrics import SHARE_REFUSALS
from sinks.clickhouse.erasure import erased
from sinks.s3 import ObjectStore
from sinks.sql_guard import short_error

log = logging.getLogger(__name__)

# How a route decides: the request, the team id parsed, the path's other parameters.
Admit = Callable[[Request, int, dict[str, str]], Awaitable[Any]]

UNAUTHORIZED = {"error": "missing or invalid read key for this team"}
# one answer whatever the reason (the metric has it): a prober learns nothing
SHARE_REFUSED = {"error": "share link is forged, expired or for another session"}
ERASED = {"error": "this session was erased"}


@dataclass(frozen=True)
class TeamApi:
    """What the team views share; api.routes binds one to their classes."""

    registry: TeamRegistry
    reader: Reader  # the summary and network reads, on the event loop
    archive: ThreadReader  # a session's raw rows, read from worker threads
    store: ObjectStore  # a session's archived parts
    share_key: bytes = field(repr=False)  # signs and checks share tokens (api.share)
    base_url: str  # this server as viewers reach it, for the links it mints
    share_expires_seconds: int  # a minted link's life unless the request says


class TeamRoute(View):
    """The frame of a GET under a team: the team id parsed (400), `admit` deciding who
    may read, errors answered through `refuse`. A malformed parameter is 400; ClickHouse
    or S3 failing is 503, logged briefly; nothing is a 500."""

    api: ClassVar[TeamApi]

    async def get(self, request: Request, team_id: str, **params: str) -> Any:
        return await self.handle(request, team_id, params, self.admit)

    async def handle(
        self, request: Request, team_id: str, params: dict[str, str], admit: Admit
    ) -> Any:
        """`admit`'s answer for the parsed team, every failure as its status (any method:
        the erasure views' POST and DELETE come through here too)."""
        try:
            return await admit(request, parse_team_id(team_id), params)
        except BadRequest as exc:
            return await self.refuse(400, {"error": str(exc)})
        except StreamBroken:
            raise
        except Exception as exc:  # ClickHouse or S3 down: say so briefly, never a 500
            log.warning("%s failed: %s", request.url.path, short_error(exc))
            return await self.refuse(503, UNAVAILABLE)

    async def admit(self, request: Request, team: int, params: dict[str, str]) -> Any:
        """The answer if the request may read the team's data, else its refusal."""
        raise NotImplementedError

    async def refuse(self, status: int, body: dict[str, Any]) -> Response:
        """Every error answer goes out here: JSON by default; a page for browsers
        overrides it to render the same error as HTML."""
        return json_response(self, body, status)

    async def gone(self, team: int, session: str) -> bool:
        """Whether the session is in an erasure request of the team (any state): its
        reads answer 410 from the moment the request is recorded."""
        return bool(await self.api.reader.records(erased(team, session)))


class TeamView(TeamRoute):
    """A GET of one team's data: `answer` runs once the request holds the team's read key.
    A wrong or missing key, or a team without one, is 401 (the team's existence is not
    revealed)."""

    async def answer(self, request: Request, team: int, **params: str) -> Any:
        raise NotImplementedError

    async def admit(self, request: Request, team: int, params: dict[str, str]) -> Any:
        if not authorized(self.api.registry, team, request):
            return await self.refuse(401, UNAUTHORIZED)
        if "session_id" in params and await self.gone(team, parse_session_id(params["session_id"])):
            return await self.refuse(410, ERASED)
        return await self.answer(request, team, **params)


class SharedSessionView(TeamRoute):
    """A GET of one session that a share link may open: `answer` runs once the request
    holds the team's read key or a ``?token=`` signed for exactly this team and session,
    unexpired. The ids are checked first (400). A token that is present but refused is
    403 (its reason counted in replay_share_refusals_total); neither key nor token is 401.

    Not a TeamView: its answer takes the session too, which TeamView.answer's signature
    does not allow a subclass to require."""

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Any:
        raise NotImplementedError

    async def admit(self, request: Request, team: int, params: dict[str, str]) -> Any:
        rest = dict(params)
        session = parse_session_id(rest.pop("session_id"))
        if not authorized(self.api.registry, team, request):
            refusal = self._token_refusal(request, team, session)
            if refusal is not None:
                return await self.refuse(*refusal)
        if await self.gone(team, session):
            return await self.refuse(410, ERASED)
        return await self.answer(request, team, session, **rest)

    def _token_refusal(
        self, request: Request, team: int, session: str
    ) -> tuple[int, dict[str, Any]] | None:
        """None if the request's token grants this read, else the status and body."""
        token = request.query.get("token")
        if token is None:
            return 401, UNAUTHORIZED
        try:
            check(self.api.share_key, token, team, session, time.time())
        except ShareRefused as refused:
            SHARE_REFUSALS.labels(refused.reason).inc()
            return 403, SHARE_REFUSED
        return None
