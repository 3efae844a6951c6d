"""One module per `replay-ingest` command, each with its arguments next to its handler.

A command module has a docstring (its `--help` description), `configure(parser)` (its
arguments) and `handle(settings, args)` (its exit status: 0 done, 1 failed, 2 bad
arguments). `replay_ingest.cli` collects them, and its docstring lists them.
"""

from __future__ import annotations

import argparse
from typing import Protocol

from config.settings import Settings


class Command(Protocol):
    """What `replay_ingest.cli` needs of a command module."""

    def configure(self, parser: argparse.ArgumentParser) -> None: ...

    def handle(self, settings: Settings, args: argparse.Namespace) -> int: ...
