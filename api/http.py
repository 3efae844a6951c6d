"""Response and body helpers of the views: JSON answers, a bounded request body, and a
streamed JSON-lines body."""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, cast

from aiohttp import web as aiohttp_web
from faust.web import Request, Response, View

from sinks.sql_guard import short_error, to_json

log = logging.getLogger(__name__)

STREAM_CHUNK_BYTES = 64 * 1024  # lines are sent in chunks of about this size
UNAVAILABLE = {"error": "storage unavailable, retry later"}  # ClickHouse or S3 failed: 503


class StreamBroken(Exception):
    """A streamed body failed after its headers went out: the connection is dropped, so
    the client sees a truncated chunked body, never a complete-looking short one."""


def json_response(view: View, body: Any, status: int = 200) -> Response:
    return view.bytes(to_json(body), status=status, content_type="application/json")


async def read_body(request: Request, limit: int) -> bytes | None:
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


async def stream_lines(request: Request, lines: AsyncIterator[bytes], first: bytes) -> Any:
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


async def stream_found(
    view: View, request: Request, lines: AsyncGenerator[bytes, None], missing: str
) -> Any:
    """`lines` as a streamed JSON-lines body, or 404 `{"error": missing}` when there are
    none (it must go out before any body); the generator is closed either way, which
    releases an S3 body early."""
    try:
        first = await anext(lines, None)
        if first is None:
            return json_response(view, {"error": missing}, 404)
        return await stream_lines(request, lines, first)
    finally:
        await lines.aclose()
