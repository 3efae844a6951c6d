"""PerformanceEntry reports (topic `performance_events_batches`) of the generated sessions.

One report per page view, as posthog-js sends them: a navigation entry, paints, the
largest contentful paint, 5-30 resources and sometimes a long task. The ground truth is
the `performance_events` row each entry should become.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

import msgspec

from replay_ingest.generator.sessions import GenerateOptions, identities

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
    """Per page view of the same sessions as `generate`: one report message and, as ground
    truth, the expected row of each of its entries (snake_case column names)."""
    for who, _ in identities(opts):
        rng = random.Random(f"{opts.seed}:{who.index}:performance")
        for window in range(rng.randint(1, 3)):
            pageview_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            time_origin = who.start_ms + window * 60_000 + round(rng.uniform(0, 999), 3)
            entries = _page_entries(rng, who.urls[window])
            report = {
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
                k: report[k]
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
            yield msgspec.json.encode(report), truth
