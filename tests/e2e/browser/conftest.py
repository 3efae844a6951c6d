"""Fixtures of the browser tests: headless Chromium (Debian's `chromium`, installed with
apt-get when missing), the npm packages the driver and the pages use (installed once per
test session into a folder of the run, never committed), the test site's static server,
`journey`, which runs the node driver (drive.cjs, via driver.py) through the site and
hands back what it did, `recording`: a worker and the capture endpoint on one broker,
and for the player page: its assets (`replay-ingest player install`), `watched` (a
worker serving the page, spilling to S3) and `viewer` (a page driven by watch.cjs)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import pytest

from streams.topics import ITEMS_TOPIC
from tests.capture_server import CaptureServer, start_capture
from tests.e2e.browser.driver import Journey, JourneyRunner, run_driver
from tests.e2e.browser.site_server import Site, serve_site
from tests.e2e.browser.viewer import Viewer
from tests.stack import WINDOWS, S3Server, Stack, WorkerProcess

HERE = Path(__file__).parent
NPM_PACKAGES = (
    "playwright-core@1.64.1",  # built for Chromium 156, Debian's
    "posthog-js",
    "rrweb",
    "@rrweb/rrweb-plugin-console-record",
)


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


def apt_installed(programs: tuple[str, ...], packages: list[str], what: str) -> None:
    """Install Debian `packages` (needs root and apt) unless every program is on PATH."""
    if all(shutil.which(program) for program in programs):
        return
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        pytest.fail(f"{what}: needs apt-get and root; install {' '.join(packages)}", pytrace=False)
    _run(["apt-get", "update"], 600, what)
    install = ["apt-get", "install", "-y", *packages]
    _run(install, 900, what, DEBIAN_FRONTEND="noninteractive")
    missing = [program for program in programs if shutil.which(program) is None]
    if missing:
        pytest.fail(f"{what}: {', '.join(missing)} not on PATH after apt-get", pytrace=False)


@pytest.fixture(scope="session")
def chromium() -> str:
    """The path of Debian's chromium, installed first if missing (needs root and apt)."""
    apt_installed(("chromium",), ["chromium"], "installing Debian's chromium")
    return str(shutil.which("chromium"))


@pytest.fixture(scope="session")
def js_packages(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of this test run holding node_modules with the driver's and pages' npm
    packages, installed once per session from the npm registry (node and npm from
    Debian first, where the machine has none)."""
    what = "installing the browser tests' npm packages"
    apt_installed(("node", "npm"), ["nodejs", "npm"], what)
    folder = tmp_path_factory.mktemp("npm")
    command = ["npm", "install", "--no-audit", "--no-fund", "--prefix", str(folder)]
    _run([*command, *NPM_PACKAGES], 600, what)
    return folder


@pytest.fixture(scope="session")
def site(js_packages: Path) -> Iterator[Site]:
    """The test site, served on 127.0.0.1 for the whole session (it holds no state)."""
    with serve_site(js_packages) as served:
        yield served


@pytest.fixture
def journey(chromium: str, js_packages: Path, site: Site, tmp_path: Path) -> JourneyRunner:
    """`with journey(flavour, capture_url, token) as done:` runs the scripted journey
    with the recorder `flavour` ("posthog" or "rrweb") posting to `capture_url`; the
    browser stays open (requests sent as pages unloaded finish) until the block ends."""

    def run(flavour: str, capture_url: str, token: str) -> AbstractContextManager[Journey]:
        settings = {
            "packages": str(js_packages),
            "chromium": chromium,
            "flavour": flavour,
            "site": site.url,
            "capture": capture_url,
            "token": token,
        }
        report = tmp_path / f"journey-{flavour}.json"
        return run_driver(settings, report, tmp_path / f"drive-{flavour}.log")

    return run


@dataclass(frozen=True)
class Recording:
    """Where the browser's recordings go: the capture endpoint, and the worker (on chDB)
    that reads what capture wrote to the broker."""

    worker: WorkerProcess
    capture: CaptureServer


@pytest.fixture
def recording(stack: Stack, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Recording]:
    """The capture endpoint and a worker (summary windows that flush within seconds)
    on the stack's broker, with the items topic made before the worker subscribes."""
    stack.create_topics(ITEMS_TOPIC)
    capture = start_capture(stack.broker, tmp_path)
    try:
        yield Recording(stack.worker(**WINDOWS).start(), capture)
    finally:
        _stop(capture, request)


@pytest.fixture
def demo(
    stack: Stack, js_packages: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[CaptureServer]:
    """The demo as `replay-ingest run` serves it: a worker with run's default registry
    (the demo team alone, no read_key) and the capture endpoint sharing its data
    directory (the page's summary route reads the worker's admin key there), serving
    rrweb and its console plugin from this run's npm folder."""
    stack.create_topics(ITEMS_TOPIC)
    worker = stack.worker(teams_file="", **WINDOWS).start()
    shared = {
        "teams_file": "",
        "data_dir": str(worker.settings.data_dir),
        "web_port": str(worker.web_port),
        "capture_node_modules": str(js_packages / "node_modules"),
    }
    capture = start_capture(stack.broker, tmp_path, **shared)
    try:
        yield capture
    finally:
        _stop(capture, request)


@pytest.fixture(scope="session")
def player_assets(tmp_path_factory: pytest.TempPathFactory, js_packages: Path) -> Path:
    """rrweb-player's JS and CSS, installed from npm once per test session by the
    command a user runs (`replay-ingest player install`) into a folder of the run."""
    folder = tmp_path_factory.mktemp("player")
    command = [sys.executable, "-m", "replay_ingest", "player", "install"]
    _run(command, 600, "installing rrweb-player", REPLAY_PLAYER_ASSETS_DIR=str(folder))
    return folder


@pytest.fixture(scope="session")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where screenshots go: $REPLAY_TEST_ARTIFACTS (CI keeps it), else a run folder."""
    configured = os.environ.get("REPLAY_TEST_ARTIFACTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("artifacts")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def viewer(chromium: str, js_packages: Path, tmp_path: Path) -> Iterator[Viewer]:
    """A browser page to watch the player with (watch.cjs), closed by its PID after."""
    watching = Viewer(js_packages, chromium, tmp_path / "viewer.log")
    try:
        yield watching
    finally:
        watching.close()


@dataclass(frozen=True)
class Watched(Recording):
    """A recording stack whose worker serves the player page; `produce` writes
    `$snapshot_items` messages straight to the broker."""

    stack: Stack

    def produce(self, values: list[bytes]) -> None:
        self.stack.produce(values, topic=ITEMS_TOPIC)


@pytest.fixture
def watched(
    recording_stack: Stack, player_assets: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Watched]:
    """A worker serving the player page (assets from this run's npm install, spilling
    to moto's S3) and the capture endpoint. A session is live for 5 s after its last
    batch unless the test's parameter (REPLAY_* overrides) says otherwise; live streams
    poll twice a second."""
    stack = recording_stack
    capture = start_capture(stack.broker, tmp_path)
    settings = WINDOWS | {
        "player_assets_dir": str(player_assets),
        "live_poll_seconds": "0.5",
        "live_window_seconds": "5",
    }
    settings |= getattr(request, "param", {})
    try:
        yield Watched(stack.worker(**settings).start(), capture, stack)
    finally:
        _stop(capture, request)


@pytest.fixture
def recording_stack(stack: Stack, s3_server: S3Server) -> Stack:
    """The stack with the items topic made and the workers spilling to moto's S3."""
    stack.create_topics(ITEMS_TOPIC)
    stack.s3_endpoint = s3_server.endpoint
    return stack


def _stop(capture: CaptureServer, request: pytest.FixtureRequest) -> None:
    """Stop the capture endpoint, printing its log when the test failed."""
    failed = getattr(request.node, "rep_call", None)
    if failed is not None and failed.failed:
        print(f"--- {capture.log_path.name} ---\n{capture.log_tail()}")
    capture.stop()
