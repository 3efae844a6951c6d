"""Run one read-only SQL statement against the configured ClickHouse and print the rows.

The SQL guard allows reads only (SELECT, WITH, EXPLAIN, DESCRIBE, SHOW) under the
REPLAY_SQL_* limits. While a worker runs on chDB the statement goes through it.
"""

from __future__ import annotations

import argparse

from config.settings import Settings
from replay_ingest.query import FORMATS, print_query


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--format", choices=FORMATS, default="table", help="output format (default: table)"
    )
    parser.add_argument("query", help="the statement, e.g. 'SELECT count() FROM ...'")


def handle(settings: Settings, args: argparse.Namespace) -> int:
    return print_query(settings, args.query, args.format)
