"""``POST /api/sql``: one read-only statement for the admin, while the worker owns chDB
(one process per data directory, so `replay-ingest sql` reaches the data through it)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import ClassVar

from faust.web import Request, Response, View

from api.http import UNAVAILABLE, json_response, read_body
from api.params import holds_key
from api.reader import Reader
from config.settings import QueryLimits
from sinks.sql_guard import QueryError, ReadOnlyViolation, short_error

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SqlApi:
    """What the SQL view needs; api.routes binds one to its class."""

    admin_key: bytes
    reader: Reader  # its own client: a slow query blocks no other view
    limits: QueryLimits
    max_query_bytes: int


class SqlView(View):
    """Only with the admin key (401), a statement of at most `max_query_bytes` (413), in
    UTF-8 (400), that the SQL guard lets through (403) and that runs (400); 503 when
    ClickHouse fails."""

    api: ClassVar[SqlApi]

    async def post(self, request: Request) -> Response:
        if not holds_key(request, self.api.admin_key):
            return json_response(self, {"error": "missing or invalid admin key"}, 401)
        body = await read_body(request, self.api.max_query_bytes)
        if body is None:
            limit = self.api.max_query_bytes
            return json_response(
                self, {"error": f"the statement is longer than {limit} bytes"}, 413
            )
        try:
            sql = body.decode("utf-8")
            columns, rows = await self.api.reader.guarded(sql, self.api.limits)
        except UnicodeDecodeError:
            return json_response(self, {"error": "the statement is not UTF-8"}, 400)
        except ReadOnlyViolation as exc:
            return json_response(self, {"error": str(exc)}, 403)
        except QueryError as exc:
            return json_response(self, {"error": str(exc)}, 400)
        except Exception as exc:
            log.warning("POST /api/sql failed: %s", short_error(exc))
            return json_response(self, UNAVAILABLE, 503)
        return json_response(self, {"columns": columns, "rows": rows})
