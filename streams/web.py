"""HTTP views on the worker's web server.

`POST /api/sql` exists because chDB allows one process per data directory: while the
worker runs on the embedded chDB, `replay-ingest sql` reaches the data through it. It is
only served for chDB (a ClickHouse server is queried directly) and runs read-only.
"""

from __future__ import annotations

import asyncio

import faust
import msgspec
from faust.web import Request, Response, View

from config.settings import Settings
from sinks.clickhouse import ReadOnlyViolation, connect, query_read_only


def define_views(app: faust.App, settings: Settings) -> None:
    if settings.chdb_path is None:
        return
    client = None
    lock = asyncio.Lock()

    @app.page("/api/sql")
    class SqlView(View):
        async def post(self, request: Request) -> Response:
            nonlocal client
            sql = (await request.read()).decode("utf-8", "replace")
            async with lock:  # one chDB client serialises its calls
                if client is None:
                    client = await asyncio.to_thread(connect, settings.clickhouse_url)
                try:
                    columns, rows = await asyncio.to_thread(query_read_only, client, sql)
                except ReadOnlyViolation as exc:
                    return self.bytes(
                        msgspec.json.encode({"error": str(exc)}),
                        status=403,
                        content_type="application/json",
                    )
                except Exception as exc:
                    return self.bytes(
                        msgspec.json.encode({"error": str(exc)}),
                        status=400,
                        content_type="application/json",
                    )
            body = msgspec.json.encode({"columns": columns, "rows": rows})
            return self.bytes(body, content_type="application/json")
