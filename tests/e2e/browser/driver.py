"""Running the node driver (drive.cjs) from the tests: its settings in, its report out
as a `Journey`, the process stopped by its PID whatever happens."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DRIVER = Path(__file__).parent / "drive.cjs"
EXIT_SECONDS = 30  # closing the browser, once told to


@dataclass(frozen=True)
class Journey:
    """What the driver did on the site, counted exactly (drive.cjs): clicks, keypresses
    (input events), console calls by level, the urls of the recorded pages in order,
    the session id the recorder used, the failures it saw, and what the recorders kept:
    for plain rrweb every event the pages emitted, for posthog-js the events of every
    $snapshot batch it captured (one list per batch)."""

    clicks: int
    keypresses: int
    console: dict[str, int]
    urls: list[str]
    session_id: str
    failures: list[str]
    kept: list[Any]


# `journey(flavour, capture_url, token)`: the `journey` fixture (conftest.py).
JourneyRunner = Callable[[str, str, str], AbstractContextManager[Journey]]


@contextmanager
def run_driver(settings: dict[str, str], report: Path, log: Path) -> Iterator[Journey]:
    """Run the journey with `settings` (see drive.cjs); the browser stays open, so that
    what the pages sent as they unloaded completes, until the block ends."""
    with log.open("w") as errors:
        driver = subprocess.Popen(
            ["node", str(DRIVER), json.dumps(settings | {"report": str(report)})],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
        )
        try:
            yield _journey_of(driver, report, log)
        finally:
            _stop(driver)


def _journey_of(driver: subprocess.Popen[str], report: Path, log: Path) -> Journey:
    """Wait for the driver's "ready" line (its own watchdog ends a journey that hangs),
    then read its report."""
    assert driver.stdout is not None
    line = driver.stdout.readline()
    if line.strip() != "ready":
        driver.wait(timeout=EXIT_SECONDS)
        raise AssertionError(f"the driver failed (exit {driver.returncode}):\n{log.read_text()}")
    done = json.loads(report.read_text())
    sessions = set(done["sessionIds"])
    assert len(sessions) == 1, f"one session across the pages, got {sessions}"
    return Journey(
        clicks=done["clicks"],
        keypresses=done["keypresses"],
        console=done["console"],
        urls=done["urls"],
        session_id=sessions.pop(),
        failures=done["failures"],
        kept=done["kept"],
    )


def _stop(driver: subprocess.Popen[str]) -> None:
    """Close its stdin (it closes the browser and exits); else terminate it (playwright
    closes the browser on SIGTERM), and kill it last, all by its PID."""
    if driver.stdin is not None:
        driver.stdin.close()
    for stop in (None, driver.terminate, driver.kill):
        if stop is not None:
            stop()
        try:
            driver.wait(timeout=EXIT_SECONDS)
            return
        except subprocess.TimeoutExpired:
            continue
