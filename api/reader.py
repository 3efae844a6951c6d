"""The views' ClickHouse clients: each one used by one call at a time, and dropped after
a failure (chDB can hand the rest of a failed result to the next query on the same
connection: "unrecognized data found")."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client

from config.settings import QueryLimits
from sinks.clickhouse.queries import Query, fetch
from sinks.clickhouse.schema import connect
from sinks.sql_guard import ReadOnlyViolation, SqlGuard


def _close(client: Client | None) -> None:
    if client is not None:
        with contextlib.suppress(Exception):
            client.close()


class Reader:
    """One client for views on the event loop: calls run in a thread, one at a time."""

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
        """Drop the client (and the guard on it)."""
        client, self.client, self.guard = self.client, None, None
        _close(client)

    async def records(self, query: Query) -> list[dict[str, Any]]:
        """Rows of one of our own statements, as column -> value."""
        columns, rows = await self.run(lambda client: fetch(client, query))
        return [dict(zip(columns, row, strict=True)) for row in rows]

    async def guarded(
        self, sql: str, limits: QueryLimits
    ) -> tuple[list[str], list[tuple[Any, ...]]]:
        """A user's statement, through the SQL guard."""

        def call(client: Client) -> tuple[list[str], list[tuple[Any, ...]]]:
            if self.guard is None:
                self.guard = SqlGuard(client, limits)
            return self.guard.query(sql)

        return await self.run(call)


class ThreadReader:
    """One client for reads made from worker threads (a session read back runs its pages
    there, see retention.read): a call is `retention.index.RunQuery`."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.client: Client | None = None
        self.lock = threading.Lock()

    def __call__(self, query: Query) -> tuple[list[str], list[tuple[Any, ...]]]:
        with self.lock:  # one client serialises its calls
            if self.client is None:
                self.client = connect(self.url)
            try:
                return fetch(self.client, query)
            except Exception:
                client, self.client = self.client, None
                _close(client)
                raise
