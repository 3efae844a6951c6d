"""HTTP views on the worker's web server: these routes and nothing else (Faust's own
table and router views are off, see streams.app).

* ``GET /api/teams/{team_id}/sessions?since=&until=&limit=`` and
  ``GET /api/teams/{team_id}/sessions/{session_id}``: the session summary, for the team
  whose ``read_key`` (team registry) comes as ``Authorization: Bearer <read_key>``.
  A wrong or missing key, or a team without one, is 401 (the team's existence is not
  revealed); malformed parameters are 400; an unknown session is 404.
* ``GET /api/teams/{team_id}/sessions/{session_id}/snapshots``: the session's events as
  JSON lines, from ClickHouse or, once archived, from S3 (same read key): a persistent,
  shareable URL whatever tier the session is in. The body is streamed (chunked), so a
  session of any size costs the worker a bounded amount of memory.
* ``GET /api/teams/{team_id}/sessions/{session_id}/network``: the session's performance
  entries (resources, navigation, paint, LCP...) in time order (same read key).
* ``POST /api/sql`` (body: one statement): exists because chDB allows one process per
  data directory, so while the worker runs on the embedded chDB, `replay-ingest sql`
  reaches the data through it. Only served for chDB (a ClickHouse server is queried
  directly), only with ``Authorization: Bearer <admin key>`` (REPLAY_ADMIN_KEY, else the
  key generated into the data directory), and only what the SQL guard (sinks.sql_guard)
  lets through: 403 for a refused statement, 400 for one that fails, 413 for a long one.

A failure of ClickHouse or S3 is 503 with a short message; no route answers 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Any, cast

import faust
from aiohttp import web as aiohttp_web
from clickhouse_connect.driver.client import Client
from faust.web import Request, Response, View

from config.settings import QueryLimits, Settings, ensure_admin_key
from config.teams import TeamRegistry
from sinks.clickhouse.queries import network_sql, session_sql, sessions_sql
from sinks.clickhouse.schema import connect
from sinks.s3 import ObjectStore
from sinks.sql_guard import QueryError, ReadOnlyViolation, SqlGuard, short_error, to_json
from streams.archive import session_lines
from streams.parse import ID_PATTERN

log = logging.getLogger(__name__)

MAX_LIMIT = 1000
MAX_TEAM_ID = 2**63 - 1
STREAM_CHUNK_BYTES = 64 * 1024  # lines are sent in chunks of about this size
# DateTime64(3) covers 1900-01-01 .. 2299-12-31; a bound outside it is a client error.
EARLIEST, LATEST = datetime(1900, 1, 1, tzinfo=UTC), datetime(2299, 12, 31, tzinfo=UTC)


class BadRequest(ValueError):
    """A request parameter is invalid (400)."""


class Reader:
    """One ClickHouse client for the web views, used by one thread at a time."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Client | None = None
        self.guard: SqlGuard | None = None
        self.lock = asyncio.Lock()

    async def run(self, call: Callable[[Client], Any]) -> Any:
        """`call(client)` in a thread, one at a time; a failed call costs the client."""
        async with self.lock:
            if self.client is None:
                self.client = await asyncio.to_thread(connect, self.url)
            try:
                return await asyncio.to_thread(call, self.client)
            except ReadOnlyViolation:
                raise  # refused before anything ran
            except Exception:
                await asyncio.to_thread(self.reset)
                raise

    def reset(self) -> None:
        """Drop the client: after a query fails mid-result, chDB can hand the rest of that
        result to the next query on the same connection ("unrecognized data found")."""
        client, self.client, self.guard = self.client, None, None
        if client is not None:
            with contextlib.suppress(Exception):
                client.close()

    async def records(self, sql: str) -> list[dict[str, Any]]:
        """Rows of one of our own statements (built from validated values)."""
        result = await self.run(lambda client: client.query(sql))
        return [dict(zip(result.column_names, row, strict=True)) for row in result.result_rows]

    async def guarded(
        self, sql: str, limits: QueryLimits
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A user's statement, through the SQL guard."""

        def call(client: Client) -> tuple[list[str], list[tuple[Any, ...]]]:
            if self.guard is None:
                self.guard = SqlGuard(client, limits)
            return self.guard.query(sql)

        return await self.run(call)


class StreamBroken(Exception):
    """A streamed body failed after its headers went out: the connection is dropped, so
    the client sees a truncated chunked body, never a complete-looking short one."""


def parse_team_id(value: str) -> int:
    """A team id in the path: ASCII digits, in Int64 range."""
    if not (value.isascii() and value.isdigit() and len(value) <= 19):
        raise BadRequest("team_id must be a positive integer")
    team_id = int(value)
    if not 0 < team_id <= MAX_TEAM_ID:
        raise BadRequest("team_id must be a positive integer")
    return team_id


def parse_session_id(value: str) -> str:
    if not ID_PATTERN.fullmatch(value):
        raise BadRequest("session_id is not a valid id")
    return value


def parse_time(value: str | None, name: str) -> datetime | None:
    """ISO 8601 date or date-time (naive means UTC), or None when absent."""
    if value is None or value == "":
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise BadRequest(f"{name} must be an ISO 8601 date or date-time") from None
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    if not EARLIEST <= moment <= LATEST:
        raise BadRequest(f"{name} must be between 1900 and 2299")
    return moment


def parse_limit(value: str | None) -> int:
    if value is None or value == "":
        return 100
    if not (value.isascii() and value.isdigit() and len(value) <= 4) or not (
        1 <= int(value) <= MAX_LIMIT
    ):
        raise BadRequest(f"limit must be an integer in 1..{MAX_LIMIT}")
    return int(value)


def _json(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(to_json(body), status=status, content_type="application/json")


def _bearer(request: Request) -> bytes | None:
    scheme, _, key = request.headers.get("Authorization", "").partition(" ")
    return key.strip().encode() if scheme.lower() == "bearer" and key.strip() else None


def _authorized(registry: TeamRegistry, team_id: int, request: Request) -> bool:
    """Whether the request carries this team's read key."""
    team = registry.by_id.get(team_id)
    presented = _bearer(request)
    if team is None or not team.read_key or presented is None:
        return False
    return hmac.compare_digest(presented, team.read_key.encode())


async def _read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None once it passes `limit` bytes (read no further)."""
    aio = cast(aiohttp_web.Request, request)
    if (aio.content_length or 0) > limit:
        return None
    body = bytearray()
    async for chunk in aio.content.iter_chunked(64 * 1024):
        body += chunk
        if len(body) > limit:
            return None
    return bytes(body)


async def _stream_lines(request: Request, lines: AsyncIterator[bytes], first: bytes) -> Any:
    """A chunked JSON-lines response of `first` and the rest of `lines`, in ~64 KiB writes."""
    aio = cast(aiohttp_web.Request, request)
    response = aiohttp_web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
    response.enable_chunked_encoding()
    await response.prepare(aio)
    pending = bytearray(first + b"\n")
    try:
        async for line in lines:
            pending += line + b"\n"
            if len(pending) >= STREAM_CHUNK_BYTES:
                await response.write(bytes(pending))
                pending.clear()
        await response.write(bytes(pending))
        await response.write_eof()
    except ConnectionError:
        pass  # the client went away
    except Exception as exc:
        log.warning("%s failed mid-stream: %s", aio.path, short_error(exc))
        raise StreamBroken from exc
    return response


def define_views(app: faust.App, settings: Settings, registry: TeamRegistry) -> None:
    reader = Reader(settings.clickhouse_url)
    archive_reader = Reader(settings.clickhouse_url)  # used from worker threads
    store = ObjectStore(settings.s3_url, settings.s3_endpoint_url)
    archive_lock = threading.Lock()

    def archive_query(sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        with archive_lock:  # one client serialises its calls
            if archive_reader.client is None:
                archive_reader.client = connect(archive_reader.url)
            try:
                result = archive_reader.client.query(sql)
            except Exception:
                archive_reader.reset()
                raise
            return list(result.column_names), [tuple(row) for row in result.result_rows]

    unauthorized = {"error": "missing or invalid read key for this team"}

    async def guarded(
        view: View, team_id: str, request: Request, answer: Callable[[int], Awaitable[Any]]
    ) -> Any:
        try:
            team = parse_team_id(team_id)
            if not _authorized(registry, team, request):
                return _json(view, unauthorized, 401)
            return await answer(team)
        except BadRequest as exc:
            return _json(view, {"error": str(exc)}, 400)
        except StreamBroken:
            raise
        except Exception as exc:  # ClickHouse or S3 down: say so briefly, never a 500
            log.warning("%s failed: %s", request.url.path, short_error(exc))
            return _json(view, {"error": "storage unavailable, retry later"}, 503)

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
                rows = await reader.records(session_sql(team, parse_session_id(session_id)))
                if not rows:
                    return _json(self, {"error": "no such session"}, 404)
                return _json(self, rows[0])

            return await guarded(self, team_id, request, answer)

    @app.page("/api/teams/{team_id}/sessions/{session_id}/network")
    class NetworkView(View):
        async def get(self, request: Request, team_id: str, session_id: str) -> Response:
            async def answer(team: int) -> Response:
                sql = network_sql(team, parse_session_id(session_id))
                return _json(self, {"entries": await reader.records(sql)})

            return await guarded(self, team_id, request, answer)

    @app.page("/api/teams/{team_id}/sessions/{session_id}/snapshots")
    class SnapshotsView(View):
        async def get(self, request: Request, team_id: str, session_id: str) -> Any:
            async def answer(team: int) -> Any:
                session = parse_session_id(session_id)
                lines = aiter(session_lines(archive_query, store, team, session))
                try:
                    first = await anext(lines, None)  # 404 must go out before any body
                    if first is None:
                        return _json(self, {"error": "no such session"}, 404)
                    return await _stream_lines(request, lines, first)
                finally:
                    close = getattr(lines, "aclose", None)  # release an S3 body early
                    if close is not None:
                        await close()

            return await guarded(self, team_id, request, answer)

    if settings.chdb_path is not None:
        _define_sql_view(app, settings)


def _define_sql_view(app: faust.App, settings: Settings) -> None:
    """POST /api/sql for the admin (see the module docstring)."""
    admin_key = ensure_admin_key(settings).encode()
    log.info("POST /api/sql takes the admin key (REPLAY_ADMIN_KEY or %s)", settings.admin_key_path)
    sql_reader = Reader(settings.clickhouse_url)  # its own client: slow queries block no view

    @app.page("/api/sql")
    class SqlView(View):
        async def post(self, request: Request) -> Response:
            presented = _bearer(request)
            if presented is None or not hmac.compare_digest(presented, admin_key):
                return _json(self, {"error": "missing or invalid admin key"}, 401)
            body = await _read_body(request, settings.sql_max_query_bytes)
            if body is None:
                limit = settings.sql_max_query_bytes
                return _json(self, {"error": f"the statement is longer than {limit} bytes"}, 413)
            try:
                sql = body.decode("utf-8")
                columns, rows = await sql_reader.guarded(sql, settings.sql_limits)
            except UnicodeDecodeError:
                return _json(self, {"error": "the statement is not UTF-8"}, 400)
            except ReadOnlyViolation as exc:
                return _json(self, {"error": str(exc)}, 403)
            except QueryError as exc:
                return _json(self, {"error": str(exc)}, 400)
            except Exception as exc:
                log.warning("POST /api/sql failed: %s", short_error(exc))
                return _json(self, {"error": "storage unavailable, retry later"}, 503)
            return _json(self, {"columns": columns, "rows": rows})
