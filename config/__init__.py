"""Configuration: the frozen settings object and the team registry.

At the bottom of the dependency graph: imports nothing of the project.
"""

from config.settings import Settings, SettingsError, load_settings
from config.teams import DEMO_TOKEN, Team, TeamRegistry, load_registry

__all__ = [
    "DEMO_TOKEN",
    "Settings",
    "SettingsError",
    "Team",
    "TeamRegistry",
    "load_registry",
    "load_settings",
]
