"""The per-token token bucket, and the remote config that tells posthog-js to record."""

from __future__ import annotations

import json

from capture.ratelimit import TokenBuckets, retry_after
from capture.remote_config import remote_config, remote_config_js
from config.teams import Team


def test_a_bucket_allows_its_burst_then_refills_at_its_rate() -> None:
    buckets = TokenBuckets(rate=2.0, burst=3)
    assert [buckets.take("a", 100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = buckets.take("a", 100.0)
    assert wait == 0.5 and retry_after(wait) == 1
    assert buckets.take("b", 100.0) == 0.0  # each token its own bucket
    assert buckets.take("a", 100.5) == 0.0  # one request's worth after 1/rate
    assert buckets.take("a", 100.5) > 0
    assert [buckets.take("a", 1000.0) for _ in range(3)] == [0.0] * 3  # refilled, capped
    assert buckets.take("a", 1000.0) > 0


def test_a_clock_going_backwards_grants_nothing() -> None:
    buckets = TokenBuckets(rate=1.0, burst=1)
    assert buckets.take("a", 50.0) == 0.0
    assert buckets.take("a", 10.0) > 0


def test_retry_after_is_whole_seconds_never_early() -> None:
    assert [retry_after(s) for s in (0.01, 1.0, 1.2, 7.99)] == [1, 1, 2, 8]


def test_recording_is_on_only_for_a_team_that_records() -> None:
    on = remote_config(Team(1, "t-1"))
    off = remote_config(Team(2, "t-2", recording_enabled=False))
    assert on["sessionRecording"]["endpoint"] == "/s/"
    assert off["sessionRecording"] is False
    assert on["supportedCompression"] == ["gzip", "gzip-js"] and on["hasFeatureFlags"] is False


def test_the_script_sets_the_global_posthog_js_reads_first() -> None:
    script = remote_config_js(Team(1, 'to"ken'))
    first, second = script.strip().splitlines()
    assert first == "window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};"
    prefix = 'window._POSTHOG_REMOTE_CONFIG["to\\"ken"] = '
    assert second.startswith(prefix) and second.endswith(";")
    assigned = json.loads(second[len(prefix) : -1])
    assert assigned == {"config": remote_config(Team(1, 'to"ken')), "siteApps": []}
