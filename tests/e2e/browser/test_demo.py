"""The demo page of the capture endpoint in real headless Chromium (issue 13, section 4,
last bullet): `GET /` records itself with rrweb, and a new user who clicks, types and
logs sees the counts the page shows move to what they did; without rrweb installed, or
without a demo team, the page says what to do instead.

demo.cjs drives the page and reports what its DOM showed; the figures expected are
computed here from the actions, by the console rule of issue 13 section 3."""

from __future__ import annotations

import json
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from replay_ingest.localstack import Broker
from tests import reference
from tests.capture_server import CaptureServer, start_capture

DEMO = Path(__file__).parent / "demo.cjs"
SECONDS = 60  # per phase: upload every 2 s, worker flush 1 s, page poll 3 s
# The console rule (issue 13 section 3), restated: these levels are warnings, these
# errors, every other level a log.
BUTTON_LEVELS = {"log": "log", "warn": "warn", "error": "error"}  # the page's buttons


@dataclass(frozen=True)
class Phase:
    """What the user does before looking at the counts again."""

    clicks: int = 0  # on "Click me"
    buttons: tuple[str, ...] = ()  # ids of the console buttons, clicked once each
    text: str = ""  # typed into the text field (after clicking it)
    console: tuple[tuple[Any, ...], ...] = ()  # console calls made in the page

    def levels(self) -> list[str]:
        return [BUTTON_LEVELS[b] for b in self.buttons] + [call[0] for call in self.console]

    def figures(self) -> Counter[str]:
        """The summary figures this phase adds: every click (a button, the text field)
        is a click, every typed character an input, every console call one message."""
        return Counter(
            click_count=self.clicks + len(self.buttons) + (1 if self.text else 0),
            keypress_count=len(self.text),
            **reference.console_counts(self.levels()),
        )


PHASES = (
    Phase(clicks=3, buttons=("log",)),
    Phase(
        buttons=("warn", "error", "error"),
        text="hello demo",
        console=(
            ("info", "some information"),
            ("table", [{"name": "ada"}]),
            ("assert", False, "an assertion that fails"),
            ("countReset", "demo"),
        ),
    ),
)


def test_the_demo_page_shows_the_counts_the_user_caused(
    demo: CaptureServer, chromium: str, js_packages: Path, tmp_path: Path
) -> None:
    expected = cumulative(PHASES)
    phases = [phase_config(p, e) for p, e in zip(PHASES, expected, strict=True)]
    report = drive(chromium, js_packages, demo.url, tmp_path, phases)
    assert report["pageErrors"] == []
    assert report["session"], report["status"]
    assert not report["controlsDisabled"]
    for shown, wanted in zip(report["shown"], expected, strict=True):
        assert {name: shown.get(name) for name in wanted} == shown_as_text(wanted)
    assert report["shown"][-1]["has_full_snapshot"] in ("true", "1")
    assert int(report["shown"][-1]["event_count"]) > 0


@pytest.mark.parametrize("case", ["no rrweb", "no demo team"])
def test_the_demo_page_says_what_is_missing(
    case: str, broker: Broker, chromium: str, js_packages: Path, tmp_path: Path
) -> None:
    """Without rrweb's scripts the page names the npm command that installs them (and the
    scripts are 404); without a demo team it names the token to register; either way its
    controls are disabled."""
    empty = tmp_path / "no-node-modules"
    empty.mkdir()
    settings = {
        "no rrweb": {"teams_file": "", "capture_node_modules": str(empty)},
        "no demo team": {"capture_node_modules": str(js_packages / "node_modules")},
    }[case]
    capture = start_capture(broker, tmp_path, **settings)
    try:
        report = drive(chromium, js_packages, capture.url, tmp_path, [])
        script = capture.request("GET", "/demo/rrweb.js").status
    finally:
        capture.stop()
    assert report["controlsDisabled"], report["status"]
    if case == "no rrweb":
        assert script == 404
        for words in ("cannot record itself", "npm install --prefix", "rrweb-plugin-console"):
            assert words in report["status"]
    else:
        assert script == 200
        assert "no team with the demo token phc_demo_token" in report["status"]


# --- driving the page ------------------------------------------------------------------


def cumulative(phases: tuple[Phase, ...]) -> list[dict[str, int]]:
    """The figures the page should show after each phase (all five, zeros included)."""
    total: Counter[str] = Counter()
    shown = []
    for phase in phases:
        total += phase.figures()
        shown.append({name: total[name] for name in Phase().figures()})
    return shown


def shown_as_text(figures: dict[str, int]) -> dict[str, str]:
    return {name: str(value) for name, value in figures.items()}


def phase_config(phase: Phase, expect: dict[str, int]) -> dict[str, Any]:
    return {
        "clicks": phase.clicks,
        "buttons": list(phase.buttons),
        "text": phase.text,
        "console": [list(call) for call in phase.console],
        "expect": shown_as_text(expect),
    }


def drive(
    chromium: str, packages: Path, url: str, tmp_path: Path, phases: list[dict[str, Any]]
) -> dict[str, Any]:
    """Run demo.cjs on the page at `url` (its own watchdog bounds it); its report, and a
    screenshot whose path is printed."""
    name = "demo" if phases else "demo-missing"
    report, screenshot = tmp_path / f"{name}.json", tmp_path / f"{name}.png"
    settings = {
        "packages": str(packages),
        "chromium": chromium,
        "page": url + "/",
        "report": str(report),
        "screenshot": str(screenshot),
        "seconds": SECONDS,
        "phases": phases,
    }
    limit = SECONDS * (len(phases) + 3)
    done = subprocess.run(
        ["node", str(DEMO), json.dumps(settings)], capture_output=True, text=True, timeout=limit
    )
    assert done.returncode == 0, f"demo.cjs exited {done.returncode}:\n{done.stderr[-3000:]}"
    print(f"screenshot of the demo page: {screenshot}")
    loaded: dict[str, Any] = json.loads(report.read_text())
    return loaded
