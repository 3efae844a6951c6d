"""The capture endpoint's aiohttp application: its routes, and serving it until stopped.

Routes (README "Capture"):
* ``GET /array/{token}/config.js`` and ``GET /array/{token}/config``: posthog-js's remote
  config (recording on only for a team that records); an unknown token is 401, as on
  every route that names one, so a mistyped token shows at once in the browser.
* ``POST /flags/``: ``{"flags": {}}`` (no feature flags here; nothing is stored).
* ``POST /s/``, ``/e/``, ``/i/v0/e/``, ``/v1/recordings/{session_id}/events``: recordings
  (capture.intake).
* ``GET /metrics``: this process's Prometheus metrics (the worker serves its own on
  REPLAY_METRICS_PORT; capture's are here, on REPLAY_CAPTURE_PORT).
* ``GET /``, ``/demo/...``, ``/static/{name}``: the demo page and its scripts
  (capture.demo).
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import metrics
from capture.demo import Demo
from capture.edge import edge
from capture.intake import OUTCOMES, Intake
from capture.producer import Producer
from capture.ratelimit import TokenBuckets
from capture.records import CHUNKED_FORMAT, ITEMS_FORMAT
from capture.refusal import STATUS_OF, UNKNOWN_TOKEN, Refused
from capture.remote_config import remote_config, remote_config_js
from config.settings import Settings
from config.teams import Team, TeamRegistry

log = logging.getLogger(__name__)

POSTHOG_ROUTES = ("/s/", "/e/", "/i/v0/e/")
PLAIN_ROUTE = "/v1/recordings/{session_id}/events"
RouteHandler = Callable[[web.Request], Awaitable[web.Response]]


def build_app(settings: Settings, registry: TeamRegistry) -> web.Application:
    """The application; its producer connects on startup and flushes on cleanup."""
    _expose_zeros()
    producer = Producer(
        settings.bootstrap,
        settings.capture_max_message_bytes,
        settings.capture_produce_timeout_seconds,
    )
    buckets = TokenBuckets(settings.capture_rate_per_second, settings.capture_rate_burst)
    intake = Intake(settings, registry, producer, buckets)
    demo = Demo(settings, registry)
    # the body limit is capture's own (capture.edge.read_capped); aiohttp's stays out
    app = web.Application(middlewares=[edge], client_max_size=settings.capture_max_body_bytes)
    app.cleanup_ctx.append(_running(producer))
    app.router.add_get("/array/{token}/config.js", _config_js(registry))
    app.router.add_get("/array/{token}/config", _config(registry))
    app.router.add_post("/flags/", _flags)
    for path in POSTHOG_ROUTES:
        app.router.add_post(path, intake.posthog)
    app.router.add_post(PLAIN_ROUTE, intake.plain)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/", demo.page)
    app.router.add_get("/demo/sessions/{session_id}", demo.summary)
    app.router.add_get("/demo/{name}", demo.script)
    app.router.add_get("/static/{name}", demo.bundle)
    return app


def _expose_zeros() -> None:
    """Every reason, outcome and format at 0 from the start, so alerts on their rates
    see a series before the first refusal."""
    for reason in STATUS_OF:
        metrics.CAPTURE_REJECTIONS.labels(reason)
    for outcome in OUTCOMES:
        metrics.CAPTURE_EVENTS.labels(outcome)
    for kind in (ITEMS_FORMAT, CHUNKED_FORMAT):
        metrics.CAPTURE_MESSAGES.labels(kind)


def _running(producer: Producer) -> Callable[[web.Application], AsyncIterator[None]]:
    async def context(app: web.Application) -> AsyncIterator[None]:
        producer.start()
        yield
        await producer.stop()

    return context


def _team(registry: TeamRegistry, request: web.Request) -> Team:
    team = registry.team_for_token(request.match_info["token"])
    if team is None:
        raise Refused(UNKNOWN_TOKEN, "unknown token")
    return team


def _config(registry: TeamRegistry) -> RouteHandler:
    async def config(request: web.Request) -> web.Response:
        return web.json_response(remote_config(_team(registry, request)))

    return config


def _config_js(registry: TeamRegistry) -> RouteHandler:
    async def config_js(request: web.Request) -> web.Response:
        script = remote_config_js(_team(registry, request))
        return web.Response(text=script, content_type="application/javascript")

    return config_js


async def _flags(request: web.Request) -> web.Response:
    return web.json_response({"flags": {}})


async def _metrics(request: web.Request) -> web.Response:
    body = generate_latest(metrics.REGISTRY)
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def serve(settings: Settings, registry: TeamRegistry) -> None:
    """Serve until SIGINT or SIGTERM, then let in-flight requests finish and flush."""
    app = build_app(settings, registry)
    log.info("capture endpoint on http://%s:%d/", settings.capture_host, settings.capture_port)
    web.run_app(
        app,
        host=settings.capture_host,
        port=settings.capture_port,
        print=None,
        access_log=None,
        shutdown_timeout=settings.capture_produce_timeout_seconds,
    )
