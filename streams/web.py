"""HTTP views on the worker's web server.

* ``GET /api/teams/{team_id}/sessions?since=&until=&limit=`` and
  ``GET /api/teams/{team_id}/sessions/{session_id}``: the session summary, for the team
  whose ``read_key`` (team registry) comes as ``Authorization: Bearer <read_key>``.
  A wrong or missing key, or a team without one, is 401 (the team's existence is not
  revealed); bad parameters are 400; an unknown session is 404.
* ``GET /api/teams/{team_id}/sessions/{session_id}/snapshots``: the session's events as
  JSON lines, from ClickHouse or, once archived, from S3 (same read key): a persistent,
  shareable URL whatever tier the session is in.
* ``GET /api/teams/{team_id}/sessions/{session_id}/network``: the session's performance
  entries (resources, navigation, paint, LCP...) in time order (same read key).
* ``POST /api/sql``: exists because chDB allows one process per data directory, so
  while the worker runs on the embedded chDB, `replay-ingest sql` reaches the data
  through it. Only served for chDB (a ClickHouse server is queried directly), and
  read-only.
"""

from __future__ import annotations

import asyncio
import hmac
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import faust
import msgspec
from clickhouse_connect.driver.client import Client
from faust.web import Request, Response, View

from config.settings import Settings
from config.teams import TeamRegistry
from sinks.clickhouse import (
    ReadOnlyViolation,
    connect,
    network_sql,
    query_read_only,
    session_sql,
    sessions_sql,
)
from sinks.s3 import ObjectStore
from streams.archive import session_lines
from streams.parse import ID_PATTERN

MAX_LIMIT = 1000


class BadRequest(ValueError):
    """A request parameter is invalid (400)."""


class Reader:
    """One ClickHouse client for the web views, used by one thread at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Client | None = None
        self.lock = asyncio.Lock()

    async def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        async with self.lock:
            if self.client is None:
                self.client = await asyncio.to_thread(connect, self.url)
            return await asyncio.to_thread(query_read_only, self.client, sql)

    async def records(self, sql: str) -> list[dict[str, Any]]:
        columns, rows = await self.query(sql)
        return [dict(zip(columns, row, strict=True)) for row in rows]


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO 8601 date or date-time (naive means UTC), or None when absent."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return 100
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise BadRequest(f"limit must be an integer in 1..{MAX_LIMIT}")
    return int(value)


def _json(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(msgspec.json.encode(body), status=status, content_type="application/json")


def _authorized(registry: TeamRegistry, team_id: str, request: Request) -> int | None:
    """The team id if the request carries that team's read key, else None."""
    if not team_id.isdigit():
        return None
    team = registry.by_id.get(int(team_id))
    header = request.headers.get("Authorization", "")
    scheme, _, key = header.partition(" ")
    if team is None or not team.read_key or scheme.lower() != "bearer":
        return None
    return team.team_id if hmac.compare_digest(key.encode(), team.read_key.encode()) else None


def define_views(app: faust.App, settings: Settings, registry: TeamRegistry) -> None:
    reader = Reader(settings.clickhouse_url)
    archive_reader = Reader(settings.clickhouse_url)  # used from worker threads
    store = ObjectStore(settings.s3_url, settings.s3_endpoint_url)
    archive_lock = threading.Lock()

    def archive_query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with archive_lock:  # one client serialises its calls
            if archive_reader.client is None:
                archive_reader.client = connect(archive_reader.url)
            return query_read_only(archive_reader.client, sql)

    unauthorized = {"error": "missing or invalid read key for this team"}

    async def guarded(
        view: View, team_id: str, request: Request, answer: Callable[[int], Any]
    ) -> Response:
        team = _authorized(registry, team_id, request)
        if team is None:
            return _json(view, unauthorized, 401)
        try:
            return await answer(team)
        except BadRequest as exc:
            return _json(view, {"error": str(exc)}, 400)

    @app.page("/api/teams/{team_id}/sessions")
    class SessionsView(View):
        async def get(self, request: Request, team_id: str) -> Response:
            async def answer(team: int) -> Response:
                query = request.query
                since = parse_time(query.get("since"), "since")
                until = parse_time(query.get("until"), "until")
                limit = parse_limit(query.get("limit"))
                rows = await reader.records(sessions_sql(team, since, until, limit))
                return _json(self, {"sessions": rows})

            return await guarded(self, team_id, request, answer)

    @app.page("/api/teams/{team_id}/sessions/{session_id}")
    class SessionView(View):
        async def get(self, request: Request, team_id: str, session_id: str) -> Response:
            async def answer(team: int) -> Response:
                if not ID_PATTERN.fullmatch(session_id):
                    raise BadRequest("session_id is not a valid id")
                rows = await reader.records(session_sql(team, session_id))
                if not rows:
                    return _json(self, {"error": "no such session"}, 404)
                return _json(self, rows[0])

            return await guarded(self, team_id, request, answer)

    @app.page("/api/teams/{team_id}/sessions/{session_id}/network")
    class NetworkView(View):
        async def get(self, request: Request, team_id: str, session_id: str) -> Response:
            async def answer(team: int) -> Response:
                if not ID_PATTERN.fullmatch(session_id):
                    raise BadRequest("session_id is not a valid id")
                return _json(self, {"entries": await reader.records(network_sql(team, session_id))})

            return await guarded(self, team_id, request, answer)

    @app.page("/api/teams/{team_id}/sessions/{session_id}/snapshots")
    class SnapshotsView(View):
        async def get(self, request: Request, team_id: str, session_id: str) -> Response:
            async def answer(team: int) -> Response:
                if not ID_PATTERN.fullmatch(session_id):
                    raise BadRequest("session_id is not a valid id")
                lines = [
                    line async for line in session_lines(archive_query, store, team, session_id)
                ]
                if not lines:
                    return _json(self, {"error": "no such session"}, 404)
                body = b"\n".join(lines) + b"\n"
                return self.bytes(body, content_type="application/x-ndjson")

            return await guarded(self, team_id, request, answer)

    if settings.chdb_path is None:
        return

    @app.page("/api/sql")
    class SqlView(View):
        async def post(self, request: Request) -> Response:
            sql = (await request.read()).decode("utf-8", "replace")
            try:
                columns, rows = await reader.query(sql)
            except ReadOnlyViolation as exc:
                return _json(self, {"error": str(exc)}, 403)
            except Exception as exc:
                return _json(self, {"error": str(exc)}, 400)
            return _json(self, {"columns": columns, "rows": rows})
