"""The rrweb events of one synthetic session, in time order.

Each window opens with a meta event and a full snapshot (a DOM tree with an inline base64
image); incremental batches carry mutations, mouse moves and clicks, scrolls, inputs and
console plugin events.

Some clicks come in bursts on one element, the stuff of rage clicks (a run of at least 3
clicks, each within 1000 ms and 30 px of the previous): 2-7 clicks, 50-600 ms and
+-12 px apart, but now and then a gap of 900-1300 ms or a step of 25-40 px, so runs
both hold and break at the edges. A burst is one click per `incremental()` call with
nothing in between, and goes on into the next batch of its window: batch cuts fall
inside bursts, as a browser's flush timer cuts them.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

import msgspec
import pybase64

WORDS = (
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
)
TAGS = ("div", "span", "p", "a", "li", "button", "section", "h2", "label", "input")
# every level a browser console has; stats count warn and countReset as warnings,
# error and assert as errors, the rest as logs
CONSOLE_LEVELS = (
    *("log", "log", "info", "warn", "error", "debug", "table", "count", "assert"),
    *("countReset", "group", "groupEnd", "trace", "dir", "time", "timeEnd"),
)
WIDTH, HEIGHT = 1440, 900

BURST_CLICKS = (2, 7)
BURST_GAP_MS = (50, 600)
SLOW_GAP_MS = (900, 1300)  # across the 1000 ms limit of a rage click
BURST_STEP_PX = 12  # per axis
FAR_STEP_PX = (25, 40)  # across the 30 px limit
EDGE_CHANCE = 0.1  # of a slow gap, and of a far step
BATCH_PAUSE_MS = (200, 30_000)

Event = dict[str, object]


class SessionWriter:
    """Builds the events of one session, window by window, in time order."""

    def __init__(self, rng: random.Random, start_ms: int) -> None:
        self.rng = rng
        self.now = start_ms
        self.node_id = 1
        self._burst: _Burst | None = None

    def pause(self, low: int, high: int) -> int:
        """Let `low`..`high` ms pass (the clock of the next event); return the new time."""
        self.now += self.rng.randint(low, high)
        return self.now

    def between_batches(self) -> None:
        """The time between two batches: 0.2-30 s, or nothing while a burst goes on (its
        next click brings its own gap)."""
        if self._burst is None:
            self.pause(*BATCH_PAUSE_MS)

    def end_burst(self) -> None:
        """Stop a burst of clicks short: its window's recording ends or goes elsewhere."""
        self._burst = None

    def meta(self, url: str) -> Event:
        """A window's first event: a page load ends any burst."""
        self.end_burst()
        data = {"href": url, "width": WIDTH, "height": HEIGHT}
        return {"type": 4, "data": data, "timestamp": self.pause(0, 50)}

    def full_snapshot(self, json_bytes: int) -> Event:
        """A full snapshot of about `json_bytes` of JSON, 30% of it an inline image."""
        self.end_burst()
        asset = self.rng.randbytes(max(0, int(json_bytes * 0.3)))
        image = {
            "type": 2,
            "tagName": "img",
            "childNodes": [],
            "id": self._next_id(),
            "attributes": {"src": "data:image/png;base64," + pybase64.b64encode(asset).decode()},
        }
        budget = [max(200, json_bytes - len(asset) * 4 // 3)]
        children: list[object] = [image]
        body = {"type": 2, "tagName": "body", "attributes": {}, "id": self._next_id()}
        body["childNodes"] = children
        while budget[0] > 0:
            children.append(self._node(1, budget))
        node = {"type": 0, "childNodes": [body], "id": 1}
        data = {"node": node, "initialOffset": {"left": 0, "top": 0}}
        return {"type": 2, "data": data, "timestamp": self.pause(5, 80)}

    def incremental_batch(self, json_bytes: int) -> list[Event]:
        """Incremental events until their JSON reaches `json_bytes` (at least one)."""
        events: list[Event] = []
        size = 0
        while size < json_bytes or not events:
            event = self.incremental()
            events.append(event)
            size += len(msgspec.json.encode([event]))
        return events

    def incremental(self) -> Event:
        """The next incremental event: the next click of a burst going on, else any kind."""
        if self._burst is not None:
            return self._next_click(self._burst)
        rng = self.rng
        kind = rng.random()
        if kind < 0.35:
            data = self._mouse_moves()
        elif kind < 0.43:
            data = {
                "source": 2,
                "type": rng.choice((0, 1, 2, 2, 4, 3, 5, 6, 9)),
                "id": rng.randint(1, 400),
                "x": rng.randint(0, WIDTH),
                "y": rng.randint(0, HEIGHT),
            }
        elif kind < 0.45:  # 2% of events start a burst
            return self._first_click()
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
            return self._console()
        else:
            data = self._mutation()
        return {"type": 3, "data": data, "timestamp": self.pause(1, 900)}

    def _first_click(self) -> Event:
        rng = self.rng
        clicks = rng.randint(*BURST_CLICKS)
        burst = _Burst(clicks, rng.randint(1, 400), rng.randint(0, WIDTH), rng.randint(0, HEIGHT))
        return self._click(burst, self.pause(1, 900))

    def _next_click(self, burst: _Burst) -> Event:
        slow = self.rng.random() < EDGE_CHANCE
        at = self.pause(*(SLOW_GAP_MS if slow else BURST_GAP_MS))
        dx, dy = self._step()
        burst.x = min(WIDTH, max(0, burst.x + dx))
        burst.y = min(HEIGHT, max(0, burst.y + dy))
        return self._click(burst, at)

    def _step(self) -> tuple[int, int]:
        """Whole pixels from one click of a burst to the next: near, or now and then far."""
        rng = self.rng
        if rng.random() < EDGE_CHANCE:
            angle, distance = rng.uniform(0, 2 * math.pi), rng.uniform(*FAR_STEP_PX)
            return round(distance * math.cos(angle)), round(distance * math.sin(angle))
        near = (-BURST_STEP_PX, BURST_STEP_PX)
        return rng.randint(*near), rng.randint(*near)

    def _click(self, burst: _Burst, at: int) -> Event:
        """A click of `burst` at time `at`; the burst ends with its last click."""
        burst.left -= 1
        self._burst = burst if burst.left > 0 else None
        data = {"source": 2, "type": 2, "id": burst.node, "x": burst.x, "y": burst.y}
        return {"type": 3, "data": data, "timestamp": at}

    def _mouse_moves(self) -> Event:
        rng = self.rng
        positions = [
            {
                "x": rng.randint(0, WIDTH),
                "y": rng.randint(0, HEIGHT),
                "id": rng.randint(1, 400),
                "timeOffset": -rng.randint(0, 500),
            }
            for _ in range(rng.randint(1, 8))
        ]
        return {"source": 1, "positions": positions}

    def _console(self) -> Event:
        rng = self.rng
        payload = {
            "level": rng.choice(CONSOLE_LEVELS),
            "payload": [f'"{self._text(rng.randint(3, 12))}"'],
            "trace": [f"app.js:{rng.randint(1, 9000)}:{rng.randint(1, 80)}"],
        }
        return {
            "type": 6,
            "data": {"plugin": "rrweb/console@1", "payload": payload},
            "timestamp": self.pause(1, 900),
        }

    def _mutation(self) -> Event:
        rng = self.rng
        return {
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

    def _text(self, words: int) -> str:
        return " ".join(self.rng.choice(WORDS) for _ in range(words))

    def _next_id(self) -> int:
        self.node_id += 1
        return self.node_id

    def _node(self, depth: int, budget: list[int]) -> Event:
        """A DOM subtree; `budget[0]` is the JSON bytes left, shared by the whole tree."""
        self.node_id += 1
        if depth > 5 or budget[0] <= 0 or self.rng.random() < 0.25:
            text = self._text(self.rng.randint(2, 14))
            budget[0] -= len(text) + 40
            return {"type": 3, "textContent": text, "id": self.node_id}
        children: list[object] = []
        node: Event = {
            "type": 2,
            "tagName": self.rng.choice(TAGS),
            "attributes": {"class": f"c-{self.rng.randint(0, 999)} {self.rng.choice(WORDS)}"},
            "childNodes": children,
            "id": self.node_id,
        }
        budget[0] -= 90
        for _ in range(self.rng.randint(1, 6)):
            if budget[0] <= 0:
                break
            children.append(self._node(depth + 1, budget))
        return node


@dataclass(slots=True)
class _Burst:
    """A burst of clicks going on: clicks left, the element, where the last click was."""

    left: int
    node: int
    x: int
    y: int
