"""What posthog-js reads before it records: its remote config. Pure.

posthog-js (1.449) takes the page global `window._POSTHOG_REMOTE_CONFIG[token].config`,
else runs the script `GET /array/{token}/config.js`, else fetches the JSON
`GET /array/{token}/config` (used only on status 200). `sessionRecording` with an
`endpoint` turns recording on and says where to post; without it (or `false`) the SDK
does not record. `hasFeatureFlags: false` keeps it from asking `/flags/`.
"""

from __future__ import annotations

from typing import Any

import msgspec

from config.teams import Team

RECORDINGS_PATH = "/s/"
SUPPORTED_COMPRESSION = ("gzip", "gzip-js")


def remote_config(team: Team) -> dict[str, Any]:
    """The config of `team`: recording on (posted to /s/) only if the team records."""
    recording: dict[str, Any] | bool = False
    if team.recording_enabled:
        recording = {"endpoint": RECORDINGS_PATH, "consoleLogRecordingEnabled": True}
    return {
        "supportedCompression": list(SUPPORTED_COMPRESSION),
        "hasFeatureFlags": False,
        "sessionRecording": recording,
        "siteApps": [],
        "autocapture_opt_out": False,
        "capturePerformance": False,
        "heatmaps": False,
        "surveys": False,
        "defaultIdentifiedOnly": True,
    }


def remote_config_js(team: Team) -> str:
    """The script form: sets the page global posthog-js looks for first."""
    token = msgspec.json.encode(team.token).decode()
    config = msgspec.json.encode({"config": remote_config(team), "siteApps": []}).decode()
    return (
        "window._POSTHOG_REMOTE_CONFIG = window._POSTHOG_REMOTE_CONFIG || {};\n"
        f"window._POSTHOG_REMOTE_CONFIG[{token}] = {config};\n"
    )
