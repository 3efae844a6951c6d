"""The test site's static server (aiohttp, 127.0.0.1, a port of its own): the pages of
site/, the recorder scripts from the npm folder of the test run, and the big page, whose
text is generated here so that the tests know it (and no megabyte is committed).

It runs in a thread of the test process with its own event loop: the site is a separate
origin from the capture endpoint, as on the web, so every request to capture is a
cross-origin one."""

from __future__ import annotations

import asyncio
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from html import escape
from pathlib import Path

from aiohttp import web

SITE = Path(__file__).parent / "site"
PAGES = ("index.html", "form.html", "big.html", "done.html")
SCRIPTS = ("site.js", "boot.js", "recorder-posthog.js", "recorder-rrweb.js")
# The npm files the pages load, by the path boot.js asks for under /js/.
PACKAGE_FILES = (
    "posthog-js/dist/array.full.js",
    "rrweb/dist/rrweb.umd.min.cjs",
    "@rrweb/rrweb-plugin-console-record/dist/rrweb-plugin-console-record.umd.min.cjs",
)
BIG_TEXT_CHARS = 1_600_000  # text of the big page: its full snapshot is well over 1 MB
PARAGRAPH_CHARS = 4_000
LETTERS = "abcdefghijklmnopqrstuvwxyz"


def big_paragraphs(seed: int = 13) -> list[str]:
    """The big page's paragraphs: random lowercase words, so that the text stays large
    after posthog-js gzips the snapshot (a repeated phrase would shrink to nothing)."""
    rng = random.Random(seed)
    paragraphs: list[str] = []
    total = 0
    while total < BIG_TEXT_CHARS:
        words: list[str] = []
        length = 0
        while length < PARAGRAPH_CHARS:
            word = "".join(rng.choices(LETTERS, k=rng.randint(2, 10)))
            words.append(word)
            length += len(word) + 1
        paragraph = " ".join(words)
        paragraphs.append(paragraph)
        total += len(paragraph)
    return paragraphs


def _page(name: str, paragraphs: list[str]) -> web.Response:
    text = (SITE / name).read_text()
    if name == "big.html":
        body = "\n".join(f"<p>{escape(p)}</p>" for p in paragraphs)
        text = text.replace("{{BIG_TEXT}}", body)
    return web.Response(text=text, content_type="text/html")


def site_app(packages: Path, paragraphs: list[str]) -> web.Application:
    """Routes for exactly the files the site needs (nothing else of the disk is served)."""
    app = web.Application()

    def page(route: str, name: str) -> web.RouteDef:
        async def handler(_: web.Request) -> web.Response:
            return _page(name, paragraphs)

        return web.get(route, handler)

    def static(route: str, path: Path, content_type: str) -> web.RouteDef:
        async def handler(_: web.Request) -> web.Response:
            return web.Response(body=path.read_bytes(), content_type=content_type)

        return web.get(route, handler)

    routes = [page(f"/{name}", name) for name in PAGES]
    routes.append(page("/", "index.html"))
    routes += [static(f"/{name}", SITE / name, "application/javascript") for name in SCRIPTS]
    routes.append(static("/site.css", SITE / "site.css", "text/css"))
    routes += [
        static(f"/js/{name}", packages / "node_modules" / name, "application/javascript")
        for name in PACKAGE_FILES
    ]
    routes.append(web.get("/favicon.ico", _no_content))
    app.add_routes(routes)
    return app


async def _no_content(_: web.Request) -> web.Response:
    return web.Response(status=204)


@dataclass(frozen=True)
class Site:
    """A running site: its base URL and the big page's paragraphs."""

    url: str
    big_paragraphs: list[str]


@contextmanager
def serve_site(packages: Path) -> Iterator[Site]:
    """Serve the site on 127.0.0.1 (a port the OS picks) until the block ends."""
    paragraphs = big_paragraphs()
    loop = asyncio.new_event_loop()
    runner = web.AppRunner(site_app(packages, paragraphs))
    loop.run_until_complete(runner.setup())
    tcp = web.TCPSite(runner, "127.0.0.1", 0)
    loop.run_until_complete(tcp.start())
    port = runner.addresses[0][1]
    thread = threading.Thread(target=loop.run_forever, name="test-site", daemon=True)
    thread.start()
    try:
        yield Site(f"http://127.0.0.1:{port}", paragraphs)
    finally:
        asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=30)
        loop.close()
