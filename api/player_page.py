"""``GET /replay/{team_id}/{session_id}``: the page that plays a session, and the assets
it loads from ``/replay/assets/{name}``.

The page is a small HTML shell; api/static/player.js does the playing (reading its
events through api.player_data). rrweb-player's JS and CSS come from npm into
``Settings.player_dir`` (`replay-ingest player install`), never from this repository;
without them the page says how to get them.

A recording is hostile content shown to whoever follows a share link, so the page is
served with a Content-Security-Policy that runs scripts from this server only (rrweb
rebuilds the recorded DOM in a sandboxed iframe without scripts; the policy is the
second wall), and with ``Referrer-Policy: no-referrer`` so that the share token in the
page's URL never reaches the hosts of the images and fonts a recorded page points to.
"""

from __future__ import annotations

import html
import time
from pathlib import Path
from typing import Any, ClassVar

from faust.web import Request, Response, View

from api.player_data import PlayerApi
from api.share import sign
from api.team import SharedSessionView

STATIC_DIR = Path(__file__).parent / "static"
# name in /replay/assets/ -> (file, where: "player" (npm, Settings.player_dir) or "static")
ASSETS = {
    "rrweb-player.js": ("rrweb-player.js", "player"),
    "rrweb-player.css": ("rrweb-player.css", "player"),
    "player.js": ("player.js", "static"),
    "player.css": ("player.css", "static"),
}
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css"}
PAGE_TOKEN_SECONDS = 12 * 3600  # a page opened with the read key gets a token this long
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; connect-src 'self'; "
        "style-src 'self' 'unsafe-inline' https: http:; img-src * data: blob:; "
        "font-src * data:; media-src * data: blob:; frame-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
}
INSTALL_HINT = (
    "rrweb-player is not installed on this worker: run <code>replay-ingest player install</code> "
    "(needs npm; <code>replay-ingest run</code> does it when npm is there), or put "
    "<code>rrweb-player.js</code> (its UMD build) and <code>rrweb-player.css</code> in "
    "<code>REPLAY_PLAYER_ASSETS_DIR</code>."
)


def asset_path(api: PlayerApi, name: str) -> Path | None:
    """The file served as /replay/assets/`name`: only the four names of ASSETS."""
    entry = ASSETS.get(name)
    if entry is None:
        return None
    file, where = entry
    return (api.player_dir if where == "player" else STATIC_DIR) / file


def installed(api: PlayerApi) -> bool:
    return all(
        (api.player_dir / file).is_file() for file, where in ASSETS.values() if where == "player"
    )


def page_html(team: int, session: str, token: str, ready: bool) -> str:
    """The page; every value is escaped (a session id is a safe id, but still)."""
    session_text = html.escape(session)
    data = (
        f'data-team="{team}" data-session="{session_text}" '
        f'data-token="{html.escape(token)}" data-replay-state="{"loading" if ready else "error"}" '
        'data-replay-time="0"'
    )
    stage = (
        '<div id="replay-windows" hidden></div><div id="replay-player"></div>'
        '<p id="replay-message" hidden></p>'
        if ready
        else f'<div id="replay-player"></div><p id="replay-message">{INSTALL_HINT}</p>'
    )
    scripts = (
        '<script src="/replay/assets/rrweb-player.js"></script>'
        '<script src="/replay/assets/player.js"></script>'
        if ready
        else ""
    )
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>Session {session_text} · replay-ingest</title>
<link rel="stylesheet" href="/replay/assets/rrweb-player.css">
<link rel="stylesheet" href="/replay/assets/player.css">
</head><body {data}>
<header><h1>Session <code>{session_text}</code></h1><span>team {team}</span>
<span id="replay-state">{"loading" if ready else "error"}</span>
<span id="replay-loaded"></span>
<a id="replay-from-start" hidden>watch from the start</a></header>
<main><section id="replay-stage">{stage}</section>
<aside><h2>Summary</h2><dl id="replay-summary"></dl>
<h2>URLs</h2><ul id="replay-urls"></ul>
<h2>Console errors</h2><ul id="replay-errors"></ul>
<h2>Missing batches</h2><ul id="replay-gap-list"></ul></aside></main>
{scripts}
</body></html>
"""


def _error_html(status: int, message: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>replay-ingest</title>'
        f'</head><body data-replay-state="error"><h1>{status}</h1>'
        f"<p>{html.escape(message)}</p></body></html>"
    )


class PlayerPageView(SharedSessionView):
    """The page, for a share token of this session or the team's read key (then the page
    carries a fresh token of its own for the data it loads: a browser's EventSource
    cannot send a header). Refusals are pages too, with the same statuses as the API."""

    api: ClassVar[PlayerApi]

    async def answer(self, request: Request, team: int, session: str, **params: str) -> Any:
        token = request.query.get("token") or sign(
            self.api.share_key, team, session, int(time.time()) + PAGE_TOKEN_SECONDS
        )
        text = page_html(team, session, token, installed(self.api))
        return self._page(text, 200)

    async def refuse(self, status: int, body: dict[str, Any]) -> Response:
        return self._page(_error_html(status, str(body.get("error", ""))), status)

    def _page(self, text: str, status: int) -> Response:
        response = self.bytes(text.encode(), status=status, content_type="text/html")
        for name, value in PAGE_HEADERS.items():
            response.headers[name] = value
        return response


class PlayerAssetView(View):
    """``GET /replay/assets/{name}``: the page's scripts and styles, no key needed (they
    are public code); any other name is 404, so no request names a file of its own."""

    api: ClassVar[PlayerApi]

    async def get(self, request: Request, name: str) -> Response:
        path = asset_path(self.api, name)
        if path is None or not path.is_file():
            return self.bytes(b"not found", status=404, content_type="text/plain")
        response = self.bytes(path.read_bytes(), content_type=CONTENT_TYPES[path.suffix])
        response.headers["Cache-Control"] = "public, max-age=300"
        response.headers["X-Content-Type-Options"] = "nosniff"
        return response
