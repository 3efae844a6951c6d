"""Run the capture endpoint: what posthog-js and plain rrweb post, written to Kafka.

Serves on REPLAY_CAPTURE_HOST:REPLAY_CAPTURE_PORT (default 127.0.0.1:8010) posthog-js's
routes (/array/{token}/config(.js), /flags/, /s/, /e/, /i/v0/e/), the plain rrweb intake
(POST /v1/recordings/{session_id}/events), its /metrics and a demo page at /. Writes
`$snapshot_items` messages, and the chunked format for a single event over
REPLAY_CAPTURE_MAX_MESSAGE_BYTES; answers 200 only once Kafka acknowledged them.
"""

from __future__ import annotations

import argparse

from config.settings import Settings


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments: the endpoint is configured by REPLAY_* variables only."""


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from capture.app import serve
    from config.teams import load_registry

    serve(settings, load_registry(settings.teams_file))
    return 0
