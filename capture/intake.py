"""The routes that take recordings: posthog-js's `/s/`, `/e/`, `/i/v0/e/` and the plain
rrweb intake `/v1/recordings/{session_id}/events`.

Each request goes the same way: body read (bounded), decoded, parsed, the token's team
found (401 if none), the token's rate limit taken (429), then, for a team that records,
its records written and acknowledged by Kafka before the 200. A team that does not
record gets its 200 too (posthog-js would retry anything else) and nothing is stored.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web

import metrics
from capture.body import decode_body
from capture.edge import read_capped, route_of
from capture.producer import Producer
from capture.ratelimit import TokenBuckets, retry_after
from capture.refusal import RATE_LIMITED, UNKNOWN_TOKEN, Refused
from capture.shapes import Parsed, parse_plain, parse_posthog
from capture.writer import Origin, write
from config.settings import Settings
from config.teams import Team, TeamRegistry

OK = {"status": 1}  # exactly what posthog-js takes as success, with status 200
STORED, IGNORED, DROPPED_TEAM_OFF = "stored", "ignored", "dropped_team_off"
OUTCOMES = (STORED, IGNORED, DROPPED_TEAM_OFF)


@dataclass
class Intake:
    """What the intake routes share: settings, teams, the producer and the buckets."""

    settings: Settings
    registry: TeamRegistry
    producer: Producer
    buckets: TokenBuckets

    async def posthog(self, request: web.Request) -> web.Response:
        """`POST /s/`, `/e/`, `/i/v0/e/`: posthog-js's bodies, every encoding."""
        parsed = parse_posthog(await self._body(request))
        team = self._team(parsed.token)
        self._take(team)
        await self._store(team, parsed)
        return web.json_response(OK)

    async def plain(self, request: web.Request) -> web.Response:
        """`POST /v1/recordings/{session_id}/events?window_id=&distinct_id=` with
        `Authorization: Bearer <token>`: a JSON array of rrweb events."""
        team = self._team(_bearer(request))
        self._take(team)
        body = await self._body(request)
        query = request.query
        snapshot = parse_plain(
            body,
            request.match_info["session_id"],
            query.get("window_id", ""),
            query.get("distinct_id", ""),
        )
        await self._store(team, Parsed(team.token, [snapshot], 0))
        return web.json_response(OK)

    async def _body(self, request: web.Request) -> bytes:
        raw = await read_capped(request, self.settings.capture_max_body_bytes)
        metrics.CAPTURE_RECEIVED_BYTES.labels(route_of(request)).inc(len(raw))
        compression = request.query.get("compression", "")
        limit = self.settings.capture_max_decoded_bytes
        return decode_body(raw, request.content_type, compression, limit)

    def _team(self, token: str | None) -> Team:
        team = self.registry.team_for_token(token) if token else None
        if team is None:
            raise Refused(UNKNOWN_TOKEN, "missing or unknown token")
        return team

    def _take(self, team: Team) -> None:
        wait = self.buckets.take(team.token, time.monotonic())
        if wait:
            raise Refused(RATE_LIMITED, "rate limited", retry_after=retry_after(wait))

    async def _store(self, team: Team, parsed: Parsed) -> None:
        metrics.CAPTURE_EVENTS.labels(IGNORED).inc(parsed.ignored)
        if not team.recording_enabled:
            metrics.CAPTURE_EVENTS.labels(DROPPED_TEAM_OFF).inc(len(parsed.snapshots))
            return
        settings = self.settings
        records = write(
            parsed.snapshots,
            _origin(team),
            settings.capture_max_message_bytes,
            settings.capture_max_decoded_bytes,
        )
        await self.producer.send_all(records)
        metrics.CAPTURE_EVENTS.labels(STORED).inc(len(parsed.snapshots))


def _origin(team: Team) -> Origin:
    now = datetime.now(UTC)
    iso = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return Origin(team.token, team.team_id, iso, int(now.timestamp() * 1000))


def _bearer(request: web.Request) -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None
