"""Fixtures of the browser tests: headless Chromium (Debian's `chromium`, installed with
apt-get when missing), the npm packages the driver and the pages use (installed once per
test session into a folder of the run, never committed), the test site's static server,
and `journey`, which runs the node driver (drive.cjs) through the site and hands back
what it did."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.browser.site_server import Site, serve_site

HERE = Path(__file__).parent
NPM_PACKAGES = (
    "playwright-core@1.64.1",  # built for Chromium 156, Debian's
    "posthog-js",
    "rrweb",
    "@rrweb/rrweb-plugin-console-record",
)
DRIVER_SECONDS = 180  # the journey takes a few seconds; this bounds a hung browser


def _run(command: list[str], timeout: float, what: str, **env: str) -> None:
    """Run a set-up command; fail the tests with its output when it does not succeed."""
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=os.environ | env,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        pytest.fail(f"{what}: {' '.join(command)} failed: {error}", pytrace=False)
    if done.returncode != 0:
        pytest.fail(
            f"{what}: {' '.join(command)} exited {done.returncode}\n{done.stderr[-3000:]}",
            pytrace=False,
        )


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's chromium, installed first if missing (needs root and apt)."""
    found = shutil.which("chromium")
    if found is None:
        what = "installing Debian's chromium for the browser tests"
        if shutil.which("apt-get") is None or os.geteuid() != 0:
            pytest.fail(f"{what}: needs apt-get and root; install `chromium`", pytrace=False)
        _run(["apt-get", "update"], 600, what)
        quiet = {"DEBIAN_FRONTEND": "noninteractive"}
        _run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], 900, what, **quiet)
        found = shutil.which("chromium")
        if found is None:
            pytest.fail(f"{what}: no `chromium` on PATH after apt-get", pytrace=False)
    return found


@pytest.fixture(scope="session")
def js_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run holding node_modules with the driver's and pages' npm
    packages, installed once per session from the npm registry."""
    what = "installing the browser tests' npm packages"
    if shutil.which("node") is None or shutil.which("npm") is None:
        pytest.fail(f"{what}: needs node and npm on PATH", pytrace=False)
    folder = tmp_path_factory.mktemp("npm")
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder)]
    _run([*command, *NPM_PACKAGES], 600, what)
    return folder


@pytest.fixture(scope="session")
def site(js_packages: Path) -> Iterator[Site]:
    """The test site, served on 127.0.0.1 for the whole session (it holds no state)."""
    with serve_site(js_packages) as served:
        yield served


@dataclass(frozen=True)
class Journey:
    """What the driver did on the site, counted exactly (drive.cjs): clicks, keypresses
    (input events), console calls by level, the urls of the recorded pages, the session
    id the recorder used, the failures it saw and, for plain rrweb, every event the
    pages emitted."""

    clicks: int
    keypresses: int
    console: dict[str, int]
    urls: list[str]
    session_id: str
    failures: list[str]
    emitted: list[dict[str, Any]]


JourneyRunner = Callable[[str, str, str], AbstractContextManager[Journey]]


@pytest.fixture
def journey(chromium: str, js_packages: Path, site: Site, tmp_path: Path) -> JourneyRunner:
    """`with journey(flavour, capture_url, token) as done:` runs the scripted journey
    with the recorder `flavour` ("posthog" or "rrweb") posting to `capture_url`; the
    browser stays open (requests sent as pages unloaded finish) until the block ends."""

    @contextmanager
    def run(flavour: str, capture_url: str, token: str) -> Iterator[Journey]:
        report = tmp_path / f"journey-{flavour}.json"
        settings = {
            "packages": str(js_packages),
            "chromium": chromium,
            "flavour": flavour,
            "site": site.url,
            "capture": capture_url,
            "token": token,
            "report": str(report),
        }
        log = (tmp_path / f"drive-{flavour}.log").open("w")
        driver = subprocess.Popen(
            ["node", str(HERE / "drive.cjs"), json.dumps(settings)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
        )
        try:
            yield _journey_of(driver, report, log.name)
        finally:
            _stop_driver(driver)
            log.close()

    return run


def _journey_of(driver: subprocess.Popen[str], report: Path, log: str) -> Journey:
    """Wait for the driver's "ready" line (it exits with an error otherwise), then read
    its report."""
    assert driver.stdout is not None
    line = driver.stdout.readline()  # bounded: the driver's own timeouts end it
    if line.strip() != "ready":
        driver.wait(timeout=DRIVER_SECONDS)
        raise AssertionError(f"the driver failed (exit {driver.returncode}):\n{Path(log).read_text()}")
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
        emitted=done["emitted"],
    )


def _stop_driver(driver: subprocess.Popen[str]) -> None:
    """Close its stdin (it then closes the browser and exits); kill it, by PID, if not."""
    if driver.stdin is not None:
        driver.stdin.close()
    try:
        driver.wait(timeout=30)
    except subprocess.TimeoutExpired:
        driver.kill()
        driver.wait(timeout=30)
