"""What every response of the capture endpoint goes through: CORS, refusals as statuses,
and the request counters.

The recorded site is another origin, so every answer, errors and preflights included,
carries CORS headers that echo the Origin (posthog-js may send credentials, which rules
out `*`). A Refused becomes its status with a short JSON reason and Retry-After where
due; nothing a client sends yields a 500.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

import metrics
from capture.refusal import TOO_LARGE, Refused

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

ALLOWED_HEADERS = "Content-Type, Authorization"
ALLOWED_METHODS = "GET, POST, OPTIONS"
PREFLIGHT_MAX_AGE = "86400"
UNMATCHED = "unmatched"  # the route label of a path no route serves


def route_of(request: web.Request) -> str:
    """The route's pattern (bounded label values), never the path a client made up."""
    route = request.match_info.route
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else UNMATCHED


def cors_headers(request: web.Request) -> dict[str, str]:
    origin = request.headers.get("Origin")
    headers = {
        "Access-Control-Allow-Methods": ALLOWED_METHODS,
        "Access-Control-Allow-Headers": ALLOWED_HEADERS,
        "Access-Control-Max-Age": PREFLIGHT_MAX_AGE,
        "Vary": "Origin",
    }
    if origin:
        headers["Access-Control-Allow-Origin"] = origin
        headers["Access-Control-Allow-Credentials"] = "true"
    else:
        headers["Access-Control-Allow-Origin"] = "*"
    return headers


def refusal_response(refused: Refused) -> web.Response:
    headers = {} if refused.retry_after is None else {"Retry-After": str(refused.retry_after)}
    return web.json_response({"error": refused.detail}, status=refused.status, headers=headers)


@web.middleware
async def edge(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer preflights, turn refusals and HTTP errors into responses, add CORS to all,
    and count each answer by route and status."""
    response = await _answer(request, handler)
    response.headers.update(cors_headers(request))
    metrics.CAPTURE_REQUESTS.labels(route_of(request), str(response.status)).inc()
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    if request.method == "OPTIONS":
        return web.Response(status=204)
    try:
        return await handler(request)
    except Refused as refused:
        metrics.CAPTURE_REJECTIONS.labels(refused.reason).inc()
        return refusal_response(refused)
    except web.HTTPException as exc:  # no such route or method
        return web.json_response({"error": exc.reason}, status=exc.status)
    except Exception:
        log.exception("capture failed on %s %s", request.method, route_of(request))
        return web.json_response({"error": "internal error"}, status=500)


async def read_capped(request: web.Request, limit: int) -> bytes:
    """The request body; Refused 413 once it passes `limit` bytes (read no further)."""
    if (request.content_length or 0) > limit:
        raise Refused(TOO_LARGE, f"body over {limit} bytes")
    body = bytearray()
    async for chunk in request.content.iter_chunked(256 * 1024):
        body += chunk
        if len(body) > limit:
            raise Refused(TOO_LARGE, f"body over {limit} bytes")
    return bytes(body)
