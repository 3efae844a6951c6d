"""Synthetic rrweb sessions in the capture format, deterministic per seed.

Counts and sizes are drawn log-normally around the production figures (per session:
full snapshots 2 sd 4, incremental batches 40 sd 214; per batch, compressed: full
snapshot 185 KB sd 160 KB, incremental 14 KB sd 50 KB). Each window opens with a meta
event and a full snapshot (a DOM tree with an inline base64 image); incremental batches
carry mutations, mouse moves and clicks, scrolls, inputs and console plugin events.
Every batch is gzip-base64 encoded and cut into pieces of `chunk_size` characters.
"""

from __future__ import annotations

import hashlib
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pybase64
from isal import isal_zlib

from config.teams import DEMO_TEAM_ID, DEMO_TOKEN

# JSON bytes per compressed byte for the two kinds of content, measured on this
# generator's own output (text-heavy DOM and event JSON compress about 4:1).
_FULL_RATIO = 2.6
_INCREMENTAL_RATIO = 4.0
_WORDS = [
    "session",
    "replay",
    "product",
    "analytics",
    "dashboard",
    "insight",
    "funnel",
    "retention",
    "cohort",
    "trend",
    "feature",
    "flag",
    "experiment",
    "survey",
    "settings",
    "billing",
    "invite",
    "project",
    "team",
    "user",
    "person",
    "event",
    "property",
    "filter",
    "breakdown",
    "export",
    "share",
    "notebook",
    "query",
    "chart",
    "table",
    "save",
]
_TAGS = ("div", "span", "p", "a", "li", "button", "section", "h2", "label", "input")
_PATHS = ("/", "/pricing", "/docs", "/blog", "/login", "/signup", "/app/insights", "/app/replay")
_CONSOLE_LEVELS = ("log", "log", "info", "warn", "error", "debug")


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    sessions: int
    seed: int = 0
    chunk_size: int = 900_000
    team_id: int = DEMO_TEAM_ID
    token: str = DEMO_TOKEN
    full_size_mean: int = 185_000
    full_size_sd: int = 160_000
    full_count_mean: float = 2
    full_count_sd: float = 4
    incremental_size_mean: int = 14_000
    incremental_size_sd: int = 50_000
    incremental_count_mean: float = 40
    incremental_count_sd: float = 214
    large_full_snapshots: int = 0
    large_full_snapshot_bytes: int = 2_500_000
    wrong_flag_rate: float = 0.05
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    spread: timedelta = timedelta(days=7)  # sessions start uniformly in [start, start + spread)


class BatchTruth(msgspec.Struct):
    """Ground truth for one generated batch (one chunk_id)."""

    team_id: int
    distinct_id: str
    session_id: str
    window_id: str
    chunk_id: str
    chunk_count: int
    first_timestamp: int
    last_timestamp: int
    event_count: int
    size: int
    has_full_snapshot: bool
    producer_flag: bool | None
    sha256: str


def lognormal(rng: random.Random, mean: float, sd: float) -> float:
    """A log-normal draw with the given mean and standard deviation (not of the log)."""
    sigma = math.sqrt(math.log(1 + (sd / mean) ** 2))
    return rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)


class _SessionWriter:
    """Builds the events of one session, window by window, in time order."""

    def __init__(self, rng: random.Random, start_ms: int) -> None:
        self.rng = rng
        self.now = start_ms
        self.node_id = 1

    def _tick(self, low: int, high: int) -> int:
        self.now += self.rng.randint(low, high)
        return self.now

    def _text(self, words: int) -> str:
        return " ".join(self.rng.choice(_WORDS) for _ in range(words))

    def _node(self, depth: int, budget: list[int]) -> dict[str, object]:
        self.node_id += 1
        if depth > 5 or budget[0] <= 0 or self.rng.random() < 0.25:
            text = self._text(self.rng.randint(2, 14))
            budget[0] -= len(text) + 40
            return {"type": 3, "textContent": text, "id": self.node_id}
        node: dict[str, object] = {
            "type": 2,
            "tagName": self.rng.choice(_TAGS),
            "attributes": {"class": f"c-{self.rng.randint(0, 999)} {self.rng.choice(_WORDS)}"},
            "childNodes": [],
            "id": self.node_id,
        }
        budget[0] -= 90
        children = node["childNodes"]
        assert isinstance(children, list)
        for _ in range(self.rng.randint(1, 6)):
            if budget[0] <= 0:
                break
            children.append(self._node(depth + 1, budget))
        return node

    def meta(self, url: str) -> dict[str, object]:
        data = {"href": url, "width": 1440, "height": 900}
        return {"type": 4, "data": data, "timestamp": self._tick(0, 50)}

    def full_snapshot(self, json_bytes: int) -> dict[str, object]:
        asset = self.rng.randbytes(max(0, int(json_bytes * 0.3)))
        image = {
            "type": 2,
            "tagName": "img",
            "childNodes": [],
            "id": self._next_id(),
            "attributes": {"src": "data:image/png;base64," + pybase64.b64encode(asset).decode()},
        }
        budget = [max(200, json_bytes - len(asset) * 4 // 3)]
        body = {
            "type": 2,
            "tagName": "body",
            "attributes": {},
            "id": self._next_id(),
            "childNodes": [image],
        }
        while budget[0] > 0:
            body["childNodes"].append(self._node(1, budget))  # type: ignore[attr-defined]
        node = {"type": 0, "childNodes": [body], "id": 1}
        data = {"node": node, "initialOffset": {"left": 0, "top": 0}}
        return {"type": 2, "data": data, "timestamp": self._tick(5, 80)}

    def _next_id(self) -> int:
        self.node_id += 1
        return self.node_id

    def incremental(self) -> dict[str, object]:
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            data = {
                "source": 1,
                "positions": [
                    {
                        "x": rng.randint(0, 1440),
                        "y": rng.randint(0, 900),
                        "id": rng.randint(1, 400),
                        "timeOffset": -rng.randint(0, 500),
                    }
                    for _ in range(rng.randint(1, 8))
                ],
            }
        elif kind < 0.45:
            data = {
                "source": 2,
                "type": rng.choice((0, 1, 2, 2, 4, 3, 5, 6, 9)),
                "id": rng.randint(1, 400),
                "x": rng.randint(0, 1440),
                "y": rng.randint(0, 900),
            }
        elif kind < 0.55:
            data = {"source": 3, "id": 1, "x": 0, "y": rng.randint(0, 8000)}
        elif kind < 0.62:
            data = {
                "source": 5,
                "text": self._text(rng.randint(1, 4)),
                "isChecked": False,
                "id": rng.randint(1, 400),
            }
        elif kind < 0.70:
            level = rng.choice(_CONSOLE_LEVELS)
            payload = {
                "level": level,
                "payload": [f'"{self._text(rng.randint(3, 12))}"'],
                "trace": [f"app.js:{rng.randint(1, 9000)}:{rng.randint(1, 80)}"],
            }
            return {
                "type": 6,
                "data": {"plugin": "rrweb/console@1", "payload": payload},
                "timestamp": self._tick(1, 900),
            }
        else:
            data = {
                "source": 0,
                "texts": [],
                "attributes": [],
                "removes": [{"parentId": rng.randint(1, 400), "id": rng.randint(401, 900)}],
                "adds": [
                    {
                        "parentId": rng.randint(1, 400),
                        "nextId": None,
                        "node": self._node(3, [rng.randint(100, 1500)]),
                    }
                ],
            }
        return {"type": 3, "data": data, "timestamp": self._tick(1, 900)}


def _encode(events: list[dict[str, object]]) -> bytes:
    return msgspec.json.encode(events)


def _incremental_batch(writer: _SessionWriter, json_bytes: int) -> list[dict[str, object]]:
    events: list[dict[str, object]] = []
    size = 0
    while size < json_bytes or not events:
        event = writer.incremental()
        events.append(event)
        size += len(_encode([event]))
    return events


def _message(
    opts: GenerateOptions,
    rng: random.Random,
    ids: dict[str, str],
    snapshot: dict[str, object],
    sent_ms: int,
) -> bytes:
    style = rng.random()
    props: dict[str, object] = {"distinct_id": ids["distinct_id"], "snapshot_data": snapshot}
    if style < 0.8:
        props |= {"$session_id": ids["session_id"], "$window_id": ids["window_id"]}
    elif style < 0.9:
        props |= {"session_id": ids["session_id"], "window_id": ids["window_id"]}
    else:
        props |= {
            "$session_id": ids["session_id"],
            "$window_id": ids["window_id"],
            "session_id": ids["session_id"],
            "window_id": ids["window_id"],
        }
    inner = msgspec.json.encode({"event": "$snapshot", "properties": props}).decode()
    sent = datetime.fromtimestamp(sent_ms / 1000, tz=UTC).isoformat()
    return msgspec.json.encode(
        {
            "uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "distinct_id": ids["distinct_id"],
            "ip": "127.0.0.1",
            "site_url": "https://example.com",
            "team_id": opts.team_id,
            "now": sent,
            "sent_at": sent,
            "token": opts.token,
            "data": inner,
        }
    )


def _batch_messages(
    opts: GenerateOptions,
    rng: random.Random,
    ids: dict[str, str],
    events: list[dict[str, object]],
) -> tuple[list[bytes], BatchTruth]:
    payload = _encode(events)
    encoded = pybase64.b64encode(isal_zlib.compress(payload, 2, 31)).decode()
    pieces = [encoded[i : i + opts.chunk_size] for i in range(0, len(encoded), opts.chunk_size)]
    chunk_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    timestamps = [int(e["timestamp"]) for e in events]  # type: ignore[call-overload]
    has_full = any(e["type"] == 2 for e in events)
    flag: bool | None = has_full
    if rng.random() < opts.wrong_flag_rate:
        flag = rng.choice((not has_full, None))
    truth = BatchTruth(
        team_id=opts.team_id,
        distinct_id=ids["distinct_id"],
        session_id=ids["session_id"],
        window_id=ids["window_id"],
        chunk_id=chunk_id,
        chunk_count=len(pieces),
        first_timestamp=min(timestamps),
        last_timestamp=max(timestamps),
        event_count=len(events),
        size=len(payload),
        has_full_snapshot=has_full,
        producer_flag=flag,
        sha256=hashlib.sha256(payload).hexdigest(),
    )
    messages = []
    for index, piece in enumerate(pieces):
        snapshot = {
            "chunk_id": chunk_id,
            "chunk_index": index,
            "chunk_count": len(pieces),
            "data": piece,
            "compression": "gzip-base64",
        }
        if flag is not None:
            snapshot["has_full_snapshot"] = flag
        messages.append(_message(opts, rng, ids, snapshot, max(timestamps)))
    return messages, truth


def _session_plan(opts: GenerateOptions, rng: random.Random, large: bool) -> list[tuple[int, str]]:
    """(window, kind) per batch in time order; each window opens with a full snapshot."""
    windows = rng.randint(1, 3)
    fulls = max(windows, round(lognormal(rng, opts.full_count_mean, opts.full_count_sd)))
    incrementals = round(lognormal(rng, opts.incremental_count_mean, opts.incremental_count_sd))
    rest = ["full"] * (fulls - windows) + ["incremental"] * incrementals
    rng.shuffle(rest)
    plan = [(w, "large" if large and w == 0 else "full") for w in range(windows)]
    plan += [(rng.randrange(windows), kind) for kind in rest]
    return plan


@dataclass(frozen=True, slots=True)
class _Identity:
    index: int
    start_ms: int
    session_id: str
    distinct_id: str
    window_ids: list[str]
    urls: list[str]


def _sessions(opts: GenerateOptions) -> Iterator[tuple[_Identity, random.Random]]:
    """Each session's identity, and the random stream its recording continues from."""
    rng = random.Random(opts.seed)
    start_ms = int(opts.start.timestamp() * 1000)
    for index in range(opts.sessions):
        session_rng = random.Random(rng.getrandbits(64))
        offset = session_rng.randint(0, int(opts.spread.total_seconds() * 1000))
        session_id = str(uuid.UUID(int=session_rng.getrandbits(128), version=4))
        distinct_id = f"user-{session_rng.randint(1, 10**9)}"
        window_ids = [str(uuid.UUID(int=session_rng.getrandbits(128), version=4)) for _ in range(3)]
        urls = [f"https://example.com{session_rng.choice(_PATHS)}" for _ in range(3)]
        identity = _Identity(index, start_ms + offset, session_id, distinct_id, window_ids, urls)
        yield identity, session_rng


def generate(opts: GenerateOptions) -> Iterator[tuple[list[bytes], BatchTruth]]:
    """Yield, per batch, its capture messages (one per piece) and its ground truth."""
    for who, session_rng in _sessions(opts):
        writer = _SessionWriter(session_rng, who.start_ms)
        session_id, distinct_id, window_ids, urls = (
            who.session_id,
            who.distinct_id,
            who.window_ids,
            who.urls,
        )
        for window, kind in _session_plan(opts, session_rng, who.index < opts.large_full_snapshots):
            ids = {
                "session_id": session_id,
                "window_id": window_ids[window],
                "distinct_id": distinct_id,
            }
            if kind == "incremental":
                size = lognormal(session_rng, opts.incremental_size_mean, opts.incremental_size_sd)
                events = _incremental_batch(writer, int(size * _INCREMENTAL_RATIO))
            else:
                size = (
                    opts.large_full_snapshot_bytes
                    if kind == "large"
                    else lognormal(session_rng, opts.full_size_mean, opts.full_size_sd)
                )
                events = [writer.meta(urls[window]), writer.full_snapshot(int(size * _FULL_RATIO))]
            writer._tick(200, 30_000)
            yield _batch_messages(opts, session_rng, ids, events)


# --- performance entries (PerformanceObserver batches) of the same sessions ------------

_ASSETS = (
    ("script", "https://cdn.example.com/static/app-{n}.js", True),
    ("link", "https://cdn.example.com/static/styles-{n}.css", True),
    ("img", "https://cdn.example.com/img/photo-{n}.png", False),
    ("fetch", "https://example.com/api/insights/{n}/", True),
    ("xmlhttprequest", "https://example.com/api/events?page={n}", True),
)


def _timing(rng: random.Random, start: float) -> dict[str, float]:
    """Resource timing from fetch to response end, in ms since the time origin."""
    marks = [start]
    for _ in range(7):
        marks.append(marks[-1] + round(rng.uniform(0, 40), 1))
    marks.append(marks[-1] + round(rng.lognormvariate(4, 1.2), 1))  # the slow part: the server
    marks.append(marks[-1] + round(rng.uniform(0, 60), 1))
    names = (
        "fetchStart",
        "domainLookupStart",
        "domainLookupEnd",
        "connectStart",
        "secureConnectionStart",
        "connectEnd",
        "requestStart",
        "responseStart",
        "responseEnd",
    )
    timing = dict(zip(names, marks[1:], strict=True))
    return timing | {
        "startTime": start,
        "duration": round(timing["responseEnd"] - start, 1),
        "redirectStart": 0,
        "redirectEnd": 0,
        "workerStart": 0,
    }


def _resource(rng: random.Random, start: float) -> dict[str, Any]:
    initiator, template, compressible = rng.choice(_ASSETS)
    decoded = int(rng.lognormvariate(9, 1.5))
    encoded = (
        int(decoded * rng.uniform(0.2, 0.4)) if compressible and rng.random() < 0.8 else decoded
    )
    status = (
        200
        if initiator not in ("fetch", "xmlhttprequest")
        else rng.choice((200, 200, 201, 404, 500))
    )
    return _timing(rng, start) | {
        "name": template.format(n=rng.randint(1, 40)),
        "entryType": "resource",
        "initiatorType": initiator,
        "nextHopProtocol": rng.choice(("h2", "h2", "http/1.1", "h3")),
        "transferSize": encoded + 300,
        "encodedBodySize": encoded,
        "decodedBodySize": decoded,
        "responseStatus": status,
        "serverTiming": [],
        "renderBlockingStatus": "blocking" if initiator in ("script", "link") else "non-blocking",
    }


def _page_entries(rng: random.Random, url: str) -> list[dict[str, Any]]:
    nav = _timing(rng, 0.0)
    end = nav["responseEnd"]
    entries: list[dict[str, Any]] = [
        nav
        | {
            "name": url,
            "entryType": "navigation",
            "initiatorType": "navigation",
            "nextHopProtocol": "h2",
            "transferSize": 12000,
            "encodedBodySize": 11700,
            "decodedBodySize": 52000,
            "responseStatus": 200,
            "renderBlockingStatus": "non-blocking",
            "unloadEventStart": 0,
            "unloadEventEnd": 0,
            "domInteractive": end + 120.5,
            "domContentLoadedEventStart": end + 130.0,
            "domContentLoadedEventEnd": end + 131.2,
            "domComplete": end + 480.7,
            "loadEventStart": end + 481.0,
            "loadEventEnd": end + 483.3,
            "type": "navigate",
            "redirectCount": 0,
        }
    ]
    paint = end + round(rng.uniform(50, 400), 1)
    entries += [
        {"name": "first-paint", "entryType": "paint", "startTime": paint, "duration": 0},
        {
            "name": "first-contentful-paint",
            "entryType": "paint",
            "startTime": paint + 8.5,
            "duration": 0,
        },
    ]
    entries.append(
        {
            "name": "",
            "entryType": "largest-contentful-paint",
            "startTime": paint + 300.25,
            "duration": 0,
            "renderTime": paint + 300.25,
            "loadTime": paint + 250.0,
            "size": rng.randint(10_000, 500_000),
            "id": "hero",
            "element": "img.hero",
            "url": "https://cdn.example.com/img/hero.png",
        }
    )
    start = end
    for _ in range(rng.randint(5, 30)):
        start = round(start + rng.uniform(1, 900), 1)
        entries.append(_resource(rng, start))
    if rng.random() < 0.3:  # kinds the pipeline keeps with the common fields only
        entries.append(
            {
                "name": "longtask",
                "entryType": "longtask",
                "startTime": start + 5,
                "duration": 72.0,
                "attribution": [],
            }
        )
    return entries


def _snake(name: str) -> str:
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name)


def generate_performance(
    opts: GenerateOptions,
) -> Iterator[tuple[bytes, list[dict[str, Any]]]]:
    """Per page view of the same sessions as `generate`: one batch message and, as ground
    truth, the expected row of each of its entries (snake_case column names)."""
    for who, _ in _sessions(opts):
        rng = random.Random(f"{opts.seed}:{who.index}:performance")
        for window in range(rng.randint(1, 3)):
            pageview_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            time_origin = who.start_ms + window * 60_000 + round(rng.uniform(0, 999), 3)
            entries = _page_entries(rng, who.urls[window])
            batch = {
                "team_id": opts.team_id,
                "token": opts.token,
                "distinct_id": who.distinct_id,
                "session_id": who.session_id,
                "window_id": who.window_ids[window],
                "pageview_id": pageview_id,
                "current_url": who.urls[window],
                "time_origin": time_origin,
                "entries": entries,
            }
            head = {
                k: batch[k]
                for k in (
                    "team_id",
                    "distinct_id",
                    "session_id",
                    "window_id",
                    "pageview_id",
                    "current_url",
                )
            }
            truth = [
                head
                | {_snake(k): v for k, v in entry.items()}
                | {"timestamp": round(time_origin + entry["startTime"])}
                for entry in entries
            ]
            yield msgspec.json.encode(batch), truth
