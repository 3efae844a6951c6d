"""The team registry: which capture token belongs to which team, and per-team policy.

Tenancy hangs on this mapping: a message is attributed to the team of its *token*,
never to the team_id it claims, so a producer cannot write into another team's data.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config.settings import SettingsError

log = logging.getLogger(__name__)

DEMO_TOKEN = "phc_demo_token"
DEMO_TEAM_ID = 1


@dataclass(frozen=True, slots=True)
class Team:
    team_id: int
    token: str
    recording_enabled: bool = True
    retention_days: int | None = None
    read_key: str | None = None
    write_key: str | None = None  # erasure (DELETE ...): a read key cannot delete


@dataclass(frozen=True, slots=True)
class TeamRegistry:
    by_token: dict[str, Team]
    by_id: dict[int, Team]

    def team_for_token(self, token: str) -> Team | None:
        return self.by_token.get(token)

    def retention_days(self, team_id: int, default: int) -> int:
        team = self.by_id.get(team_id)
        return team.retention_days if team and team.retention_days else default

    @classmethod
    def of(cls, teams: list[Team]) -> TeamRegistry:
        return cls({team.token: team for team in teams}, {team.team_id: team for team in teams})


def _team_from_json(item: Any, where: str) -> Team:
    if not isinstance(item, dict):
        raise SettingsError(f"{where}: each entry must be an object")
    try:
        team_id, token = item["team_id"], item["token"]
    except KeyError as exc:
        raise SettingsError(f"{where}: entry {item!r} lacks {exc.args[0]!r}") from None
    if not isinstance(team_id, int) or isinstance(team_id, bool) or team_id <= 0:
        raise SettingsError(f"{where}: team_id must be a positive integer, got {team_id!r}")
    if not isinstance(token, str) or not token:
        raise SettingsError(f"{where}: token of team {team_id} must be a non-empty string")
    enabled = item.get("recording_enabled", True)
    retention = item.get("retention_days")
    read_key = item.get("read_key")
    write_key = item.get("write_key")
    if not isinstance(enabled, bool):
        raise SettingsError(f"{where}: recording_enabled of team {team_id} must be a boolean")
    if retention is not None and (not isinstance(retention, int) or retention <= 0):
        raise SettingsError(f"{where}: retention_days of team {team_id} must be positive")
    if read_key is not None and not isinstance(read_key, str):
        raise SettingsError(f"{where}: read_key of team {team_id} must be a string")
    if write_key is not None and not isinstance(write_key, str):
        raise SettingsError(f"{where}: write_key of team {team_id} must be a string")
    if write_key is not None and write_key == read_key:
        raise SettingsError(f"{where}: write_key of team {team_id} must differ from its read_key")
    return Team(team_id, token, enabled, retention, read_key, write_key)


def load_registry(path: Path | None) -> TeamRegistry:
    """Load REPLAY_TEAMS_FILE, or fall back to a single demo team (and say so)."""
    if path is None:
        log.warning(
            "REPLAY_TEAMS_FILE is not set: using the demo team (team_id=%d, token=%r)",
            DEMO_TEAM_ID,
            DEMO_TOKEN,
        )
        return TeamRegistry.of([Team(DEMO_TEAM_ID, DEMO_TOKEN)])
    where = f"REPLAY_TEAMS_FILE={str(path)!r}"
    try:
        items = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{where}: cannot read a JSON list: {exc}") from None
    if not isinstance(items, list) or not items:
        raise SettingsError(f"{where}: expected a non-empty JSON list of teams")
    teams = [_team_from_json(item, where) for item in items]
    tokens = [team.token for team in teams]
    if len(set(tokens)) != len(tokens):
        raise SettingsError(f"{where}: a token appears twice")
    return TeamRegistry.of(teams)
