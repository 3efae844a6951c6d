"""Settings and team registry: defaults, and failures that name the variable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import config.settings
from config import DEMO_TOKEN, SettingsError, load_registry, load_settings


def test_defaults_point_at_the_embedded_stack(tmp_path: Path) -> None:
    settings = load_settings({"REPLAY_DATA_DIR": str(tmp_path)})
    assert settings.broker_url == "kafka://127.0.0.1:9092"
    assert settings.clickhouse_url == f"chdb://{tmp_path / 'clickhouse'}"
    assert settings.chdb_path == tmp_path / "clickhouse"
    assert settings.chunk_ttl_seconds == 3600
    assert settings.teams_file is None
    with pytest.raises(AttributeError):
        settings.app_id = "other"  # type: ignore[misc]


def test_http_clickhouse_is_not_chdb() -> None:
    settings = load_settings({"REPLAY_CLICKHOUSE_URL": "http://u:p@ch:8123/db"})
    assert settings.chdb_path is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("REPLAY_BROKER_URL", "http://x:1"),
        ("REPLAY_BROKER_URL", "kafka://nohost"),
        ("REPLAY_CLICKHOUSE_URL", "mysql://x"),
        ("REPLAY_CLICKHOUSE_URL", "chdb://"),
        ("REPLAY_WEB_PORT", "70000"),
        ("REPLAY_METRICS_PORT", "abc"),
        ("REPLAY_CHUNK_TTL_SECONDS", "0"),
        ("REPLAY_CHUNK_TTL_SECONDS", "-5"),
        ("REPLAY_TAKE_MAX_SECONDS", "0"),
        ("REPLAY_BATCH_MAX_SECONDS", "0"),  # deprecated name of REPLAY_TAKE_MAX_SECONDS
        ("REPLAY_STORE", "redis://"),
        ("REPLAY_APP_ID", "bad id!"),
        ("REPLAY_TEAMS_FILE", "/does/not/exist.json"),
        ("REPLAY_S3_URL", "http://bucket"),
        ("REPLAY_LOG_LEVEL", "LOUD"),
    ],
)
def test_bad_values_fail_naming_the_variable(name: str, value: str) -> None:
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_registry_without_file_is_the_demo_team(caplog: pytest.LogCaptureFixture) -> None:
    registry = load_registry(None)
    assert registry.team_for_token(DEMO_TOKEN) is not None
    assert "demo team" in caplog.text


def test_registry_file_allows_extra_keys(tmp_path: Path) -> None:
    path = tmp_path / "teams.json"
    path.write_text(
        json.dumps(
            [
                {
                    "team_id": 5,
                    "token": "t5",
                    "recording_enabled": False,
                    "retention_days": 3,
                    "name": "x",
                },
            ]
        )
    )
    team = load_registry(path).team_for_token("t5")
    assert team is not None and (team.team_id, team.recording_enabled, team.retention_days) == (
        5,
        False,
        3,
    )


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "[]",
        '{"team_id": 1}',
        '[{"token": "x"}]',
        '[{"team_id": 0, "token": "x"}]',
        '[{"team_id": 1, "token": "x"}, {"team_id": 2, "token": "x"}]',
        '[{"team_id": 1, "token": "x", "recording_enabled": "yes"}]',
    ],
)
def test_bad_registry_fails_naming_the_variable(tmp_path: Path, content: str) -> None:
    path = tmp_path / "teams.json"
    path.write_text(content)
    with pytest.raises(SettingsError, match="REPLAY_TEAMS_FILE"):
        load_registry(path)


def test_cli_reports_bad_configuration(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    from replay_ingest.cli import main

    monkeypatch.setenv("REPLAY_WEB_PORT", "nope")
    assert main(["sql", "SELECT 1"]) == 2
    assert "REPLAY_WEB_PORT" in capsys.readouterr().err


def test_passwords_and_secrets_never_print(tmp_path: Path) -> None:
    env = {
        "REPLAY_DATA_DIR": str(tmp_path),
        "REPLAY_CLICKHOUSE_URL": "https://reader:s3cr3t@ch.example:8443/db",
        "REPLAY_BROKER_URL": "kafka://user:hunter2@b:9092",
        "REPLAY_ADMIN_KEY": "admin-key-value-that-is-long-enough",
    }
    text = repr(load_settings(env))
    assert "s3cr3t" not in text and "hunter2" not in text and "admin-key-value" not in text
    assert "reader:***@ch.example:8443" in text and "user:***@b:9092" in text
    with pytest.raises(SettingsError) as refused:
        load_settings(env | {"REPLAY_CLICKHOUSE_URL": "ftp://u:topsecret@h/db"})
    assert "topsecret" not in str(refused.value) and "REPLAY_CLICKHOUSE_URL" in str(refused.value)


def test_take_settings_and_their_deprecated_names(tmp_path: Path) -> None:
    new = {"REPLAY_TAKE_MAX_MESSAGES": "7", "REPLAY_TAKE_MAX_SECONDS": "0.25"}
    old = {"REPLAY_BATCH_MAX_MESSAGES": "9", "REPLAY_BATCH_MAX_SECONDS": "3"}
    taken = load_settings(new | {"REPLAY_TAKES_IN_FLIGHT": "0"})
    assert (taken.take_max_messages, taken.take_max_seconds, taken.takes_in_flight) == (7, 0.25, 0)
    deprecated = load_settings(old | {"REPLAY_BATCHES_IN_FLIGHT": "5"})
    assert (deprecated.take_max_messages, deprecated.take_max_seconds) == (9, 3.0)
    assert deprecated.takes_in_flight == 5
    both = load_settings(old | new)  # the new names win
    assert (both.take_max_messages, both.take_max_seconds) == (7, 0.25)
    defaults = load_settings({"REPLAY_DATA_DIR": str(tmp_path)})
    assert (defaults.take_max_messages, defaults.takes_in_flight) == (2000, 2)


def test_a_deprecated_name_is_warned_about_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(config.settings, "_warned", set())
    for _ in range(3):
        load_settings({"REPLAY_BATCHES_IN_FLIGHT": "1", "REPLAY_TAKE_MAX_SECONDS": "2"})
    warnings = [r.getMessage() for r in caplog.records if "deprecated" in r.getMessage()]
    assert warnings == [
        "REPLAY_BATCHES_IN_FLIGHT is deprecated: set REPLAY_TAKES_IN_FLIGHT instead"
    ]
