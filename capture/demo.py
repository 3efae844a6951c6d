"""The demo routes: the self-recording page, the rrweb scripts it loads, its session's
summary, and posthog-js's lazily loaded bundles.

JavaScript is never committed: it comes from an npm install (REPLAY_CAPTURE_NODE_MODULES,
by default `$REPLAY_DATA_DIR/js/node_modules`, where `replay-ingest run` installs rrweb
when npm exists); a missing file is 404 and the page says how to get it.

The summary is read from the worker for the demo team only (config.teams.DEMO_TOKEN):
with the team's read key through `GET /api/teams/{team}/sessions/{id}` when it has one;
otherwise, as with the default registry of `replay-ingest run`, through the worker's
`POST /api/sql` with the admin key of the data directory (one fixed statement on a
validated id). Neither key ever reaches the browser.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from aiohttp import web

from capture.demo_page import demo_page
from config.settings import Settings, read_admin_key
from config.teams import DEMO_TOKEN, Team, TeamRegistry
from sinks.clickhouse.queries import session_query
from sinks.ids import is_safe_id

SUMMARY_PREFIX = "/demo/sessions/"
JS = "application/javascript"
SCRIPTS = {
    "rrweb.js": Path("rrweb/dist/rrweb.umd.min.cjs"),
    "rrweb-console-record.js": Path(
        "@rrweb/rrweb-plugin-console-record/dist/rrweb-plugin-console-record.umd.min.cjs"
    ),
}
POSTHOG_DIST = Path("posthog-js/dist")
_BUNDLE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,100}\.js")
_WORKER_TIMEOUT = aiohttp.ClientTimeout(total=10)


@dataclass
class Demo:
    settings: Settings
    registry: TeamRegistry

    @property
    def team(self) -> Team | None:
        return self.registry.team_for_token(DEMO_TOKEN)

    async def page(self, request: web.Request) -> web.Response:
        """`GET /`: the page, recording with the demo token if a team owns it."""
        token = DEMO_TOKEN if self.team is not None else None
        html = demo_page(token, DEMO_TOKEN, SUMMARY_PREFIX)
        return web.Response(text=html, content_type="text/html")

    async def script(self, request: web.Request) -> web.StreamResponse:
        """`GET /demo/{name}`: rrweb or its console plugin (UMD builds), from npm."""
        relative = SCRIPTS.get(request.match_info["name"])
        return self._file(relative and self.settings.capture_js_dir / relative)

    async def bundle(self, request: web.Request) -> web.StreamResponse:
        """`GET /static/{name}`: posthog-js's lazy bundles (`lazy-recorder.js`...), from
        a local posthog-js install if there is one."""
        name = request.match_info["name"]
        if not _BUNDLE_NAME.fullmatch(name):
            return self._file(None)
        return self._file(self.settings.capture_js_dir / POSTHOG_DIST / name)

    @staticmethod
    def _file(path: Path | None) -> web.StreamResponse:
        if path is None or not path.is_file():
            return web.json_response({"error": "not installed (see the README)"}, status=404)
        return web.FileResponse(path, headers={"Content-Type": JS})

    async def summary(self, request: web.Request) -> web.Response:
        """`GET /demo/sessions/{session_id}`: the worker's summary of a demo session."""
        session, team = request.match_info["session_id"], self.team
        if team is None:
            return web.json_response({"error": "no demo team"}, status=404)
        if not is_safe_id(session):
            return web.json_response({"error": "invalid session id"}, status=400)
        try:
            return await self._read(team, session)
        except (aiohttp.ClientError, TimeoutError):
            return web.json_response({"error": "the worker does not answer"}, status=503)

    async def _read(self, team: Team, session: str) -> web.Response:
        base = f"http://{self.settings.web_host}:{self.settings.web_port}"
        async with aiohttp.ClientSession(timeout=_WORKER_TIMEOUT) as client:
            if team.read_key:
                url = f"{base}/api/teams/{team.team_id}/sessions/{session}"
                headers = {"Authorization": f"Bearer {team.read_key}"}
                async with client.get(url, headers=headers) as answer:
                    return web.json_response(await answer.json(), status=answer.status)
            return await self._read_sql(client, base, team, session)

    async def _read_sql(
        self, client: aiohttp.ClientSession, base: str, team: Team, session: str
    ) -> web.Response:
        key = read_admin_key(self.settings)
        if key is None:
            error = "the demo team has no read_key and there is no admin key"
            return web.json_response({"error": error}, status=503)
        statement = session_query(team.team_id, session).inline()
        headers = {"Authorization": f"Bearer {key}"}
        async with client.post(f"{base}/api/sql", data=statement, headers=headers) as answer:
            body = await answer.json()
        if answer.status != 200:
            return web.json_response({"error": body.get("error", "")}, status=answer.status)
        if not body["rows"]:
            return web.json_response({"error": "not summarised yet"}, status=404)
        return web.json_response(dict(zip(body["columns"], body["rows"][0], strict=True)))
