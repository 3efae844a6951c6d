"""The player page (issue 14) in real headless Chromium: a session recorded from the test
site by plain rrweb plays from ClickHouse and, after the spill, from S3; share links
that are forged, expired or for another session are refused; a live session is
followed; missing batches and sessions without a full snapshot say so; a hostile
recording cannot run script in the page."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.share import sign
from tests.builders import console_error, items_value, page_events, text_added
from tests.checks import cli, get
from tests.e2e.browser.conftest import Watched
from tests.e2e.browser.driver import JourneyRunner
from tests.e2e.browser.viewer import Viewer
from tests.stack import WorkerProcess, wait_until

TEAM, TOKEN, READ_KEY = 1, "token-1", "read-key-1"  # tests.stack.TEAMS
OTHER_READ_KEY = "read-key-2"
STORED_SECONDS = 120
LIVE_SECONDS = 5  # the issue: new events appear in the player within 5 s
SPEED = 8  # the page's ?speed=: a journey of ~20 s plays in a few seconds
PLAYING = ("playing", "finished", "live")


def test_recorded_session_plays_from_clickhouse_and_after_the_spill_from_s3(
    watched: Watched, journey: JourneyRunner, viewer: Viewer, artifacts: Path
) -> None:
    worker = watched.worker
    with journey("rrweb", watched.capture.url, TOKEN) as done:
        assert done.failures == []
        summary = wait_for_summary(worker, done.session_id, done.clicks)
    duration = int(summary_ms(summary["end_time"]) - summary_ms(summary["start_time"]))
    url = share_url(worker, done.session_id)
    wait_not_live(worker, done.session_id)

    watch(viewer, url, duration, artifacts / "player-clickhouse.png")
    assert summary["storage"] == "clickhouse"

    worker.stop()  # chDB: one process per data directory
    later = (datetime.now(UTC) + timedelta(days=400)).isoformat()
    spilled = cli(worker, "spill", "--as-of", later)
    assert spilled.returncode == 0, spilled.stderr.decode()
    worker.start()
    stored = get(worker, f"/api/teams/{TEAM}/sessions/{done.session_id}", READ_KEY)[1]
    assert stored["storage"] == "s3"
    assert worker.scalar(raw_rows(done.session_id)) == 0  # nothing left hot

    watch(viewer, url, duration, artifacts / "player-s3.png")


def watch(viewer: Viewer, url: str, duration: int, screenshot: Path) -> None:
    """The page plays the session to its end, shows the recorded page's text and
    the summary, and a screenshot is kept."""
    assert viewer.open(f"{url}&speed={SPEED}") == 200
    assert viewer.state("playing", "finished", seconds=60)["state"] in ("playing", "finished")
    assert viewer.text("A small site recorded by a test", seconds=30) >= 0
    assert viewer.time(duration - 1, seconds=120) >= duration - 1
    assert viewer.state("finished", seconds=60)["time"] >= duration - 1
    assert viewer.count("#replay-summary dd") >= 5
    assert any("/index.html" in text for text in viewer.texts("#replay-urls li"))
    assert viewer.screenshot(screenshot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert viewer.page_errors == []


def test_share_links_forged_expired_or_for_another_session_are_refused(
    watched: Watched, viewer: Viewer
) -> None:
    worker = watched.worker
    mine, other = ingest(watched, page_events("mine")), ingest(watched, page_events("other"))
    key = (worker.settings.data_dir / "share.key").read_text().strip().encode()
    future = int(time.time()) + 3600
    good = sign(key, TEAM, mine, future)
    page = f"{base(worker)}/replay/{TEAM}/{mine}"

    assert viewer.open(f"{page}?token={good}") == 200
    assert viewer.state(*PLAYING)["state"] in PLAYING
    refused = {
        "forged": good[:-2] + ("AA" if not good.endswith("AA") else "BB"),
        "expired": sign(key, TEAM, mine, int(time.time()) - 1),
        "other session": sign(key, TEAM, other, future),
        "other key": sign(b"not-the-worker-key-at-all", TEAM, mine, future),
    }
    for what, token in refused.items():
        assert viewer.open(f"{page}?token={token}") == 403, what
        for route in ("player", "events", "live"):
            assert status(worker, f"/api/teams/{TEAM}/sessions/{mine}/{route}?token={token}") == 403
    assert viewer.open(page) == 401  # no token, no key
    assert viewer.open(page, {"Authorization": f"Bearer {OTHER_READ_KEY}"}) == 401
    assert viewer.open(page, {"Authorization": f"Bearer {READ_KEY}"}) == 200
    assert viewer.state(*PLAYING)["state"] in PLAYING
    assert viewer.open(f"{base(worker)}/replay/{TEAM}/..%2Fetc?token={good}") in (400, 404)


@pytest.mark.parametrize("watched", [{"live_window_seconds": "300"}], indirect=True)
def test_a_live_session_is_followed_within_five_seconds(watched: Watched, viewer: Viewer) -> None:
    worker = watched.worker
    now = int(time.time() * 1000)
    session = ingest(watched, page_events("Live page", start=now - 2000))
    assert viewer.open(share_url(worker, session)) == 200
    assert viewer.state("live", seconds=60)["state"] == "live"
    assert viewer.text("Live page", seconds=30) >= 0
    for number in range(3):
        marker = f"arrived-{number}-{uuid.uuid4().hex[:8]}"
        sent = time.monotonic()
        produce(watched, session, [text_added(marker, int(time.time() * 1000), 100 + number)])
        viewer.text(marker, seconds=LIVE_SECONDS + 10)
        waited = time.monotonic() - sent
        print(f"live: {marker} appeared {waited:.2f} s after it was produced")
        assert waited <= LIVE_SECONDS, f"{marker} took {waited:.1f} s to appear"
    assert viewer.state("live")["state"] == "live"
    assert viewer.page_errors == []


def test_missing_batches_are_marked_and_no_full_snapshot_is_unplayable(
    watched: Watched, viewer: Viewer
) -> None:
    worker = watched.worker
    events = page_events("Gappy page")
    start = events[0]["timestamp"]
    session = ingest(watched, [*events, console_error("boom", start + 3000)])
    bad = [{"type": 3, "timestamp": "soon"}]
    broken = items_value(session_id=session, window_id="w-one", items=bad, timestamp=start + 1500)
    watched.produce([broken])
    wait_until(lambda: worker.scalar(gaps_of(session)) == 1, 60, "the gap recorded")
    wait_not_live(worker, session)

    assert viewer.open(share_url(worker, session)) == 200
    assert viewer.state("playing", "finished")["state"] in ("playing", "finished")
    wait_until(lambda: viewer.count(".rr-progress [data-gap]") == 1, 30, "the gap marker")
    assert len(viewer.texts("#replay-gap-list li")) == 1
    assert viewer.texts("#replay-errors li") == ['"boom"']

    no_full = ingest(watched, [e for e in page_events("Never shown") if e["type"] != 2])
    assert viewer.open(share_url(worker, no_full)) == 200
    assert viewer.state("unplayable", seconds=60)["state"] == "unplayable"
    assert "unplayable: no full snapshot" in viewer.texts("#replay-message")[0]


def test_windows_switch_and_a_hostile_recording_runs_no_script(
    watched: Watched, viewer: Viewer
) -> None:
    worker = watched.worker
    hostile = '<img src=x onerror="window.__pwned_summary=1">'
    first = page_events("First window", href=f"https://example.com/{hostile}", hostile=True)
    session = ingest(watched, first, window="w-one")
    second = page_events("Second window", start=first[0]["timestamp"] + 500)
    ingest(watched, second, session, "w-two")
    wait_not_live(worker, session)

    assert viewer.open(share_url(worker, session)) == 200
    assert viewer.state("playing", "finished")["state"] in ("playing", "finished")
    assert viewer.text("First window", seconds=30) >= 0
    wait_until(lambda: viewer.count("#replay-windows button") == 2, 30, "two windows listed")
    viewer.request("click", selector='#replay-windows button[data-window="w-two"]')
    assert viewer.text("Second window", seconds=30) >= 0
    assert viewer.request("globals") == []  # neither the recording nor its urls ran script
    assert viewer.count("aside img") == 0
    assert viewer.page_errors == []


# --- helpers of these tests ------------------------------------------------------------


def base(worker: WorkerProcess) -> str:
    return f"http://127.0.0.1:{worker.web_port}"


def share_url(worker: WorkerProcess, session: str) -> str:
    """The URL `replay-ingest sessions share` prints as its last line."""
    out = cli(worker, "sessions", "share", "--team", str(TEAM), "--session", session)
    assert out.returncode == 0, out.stderr.decode()
    url = out.stdout.decode().strip().splitlines()[-1]
    assert url.startswith(f"{base(worker)}/replay/{TEAM}/{session}?token=")
    return url


def status(worker: WorkerProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{base(worker)}{path}", timeout=30) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as error:
        return int(error.code)


def produce(
    watched: Watched, session: str, events: list[dict[str, Any]], window: str = "w-one"
) -> None:
    watched.produce([items_value(session_id=session, window_id=window, items=events)])


def ingest(
    watched: Watched,
    events: list[dict[str, Any]],
    session: str | None = None,
    window: str = "w-one",
) -> str:
    """A session (new unless given) holding `events` in `window`, once stored."""
    session = session or f"s-{uuid.uuid4().hex[:12]}"
    before = stored_count(watched.worker, session)
    produce(watched, session, events, window)
    wait_until(
        lambda: stored_count(watched.worker, session) == before + len(events),
        STORED_SECONDS,
        f"session {session} stored",
    )
    return session


def stored_count(worker: WorkerProcess, session: str) -> int:
    return int(
        worker.scalar(
            "SELECT sum(event_count) FROM session_recording_events FINAL "
            f"WHERE team_id = {TEAM} AND session_id = '{session}'"
        )
        or 0
    )


def raw_rows(session: str) -> str:
    return f"SELECT count() AS n FROM session_recording_events WHERE session_id = '{session}'"


def gaps_of(session: str) -> str:
    return f"SELECT count() AS n FROM session_recording_gaps FINAL WHERE session_id = '{session}'"


def wait_not_live(worker: WorkerProcess, session: str) -> None:
    """Until the page would play the session rather than follow it (the fixture's live
    window is 5 s)."""
    path = f"/api/teams/{TEAM}/sessions/{session}/player"
    wait_until(lambda: get(worker, path, READ_KEY)[1]["live"] is False, 60, "not live")


def wait_for_summary(worker: WorkerProcess, session: str, clicks: int) -> dict[str, Any]:
    path = f"/api/teams/{TEAM}/sessions/{session}"

    def summarised() -> dict[str, Any] | None:
        code, body = get(worker, path, READ_KEY)
        return body if code == 200 and body["click_count"] == clicks else None

    return wait_until(summarised, STORED_SECONDS, "the journey summarised")


def summary_ms(value: str) -> float:
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000
