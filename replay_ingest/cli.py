"""replay-ingest: the one entry point of the session-recording back end, one command each.

  worker    run the stream-processing worker (Faust); creates the ClickHouse tables
  capture   the HTTP endpoint posthog-js and plain rrweb post recordings to
  run       embedded local stack: Tansu, SeaweedFS, worker on chDB, capture, generator
  generate  synthetic capture messages (and performance reports) as JSON lines, per seed
  produce   send JSON lines to a Kafka topic, one message per line
  sql       one read-only SQL statement against the configured ClickHouse
  sessions  session summaries (list), a session's events (get), a signed link to one (share)
  spill     move sessions past retention to S3 (one pass)
  delete    erase sessions, a person's or a team's before a date, from every tier
  dlq       inspect dead letters (list) and re-inject them once after a fix (replay)
  player    install the player page's assets (rrweb-player, from npm)

Every command is configured by the REPLAY_* environment variables (see the README);
`replay-ingest COMMAND --help` describes its arguments.
"""

from __future__ import annotations

import argparse
import logging
import sys

from config.settings import Settings, SettingsError, load_settings
from replay_ingest.commands import (
    Command,
    capture,
    delete,
    dlq,
    generate,
    player,
    produce,
    run,
    sessions,
    spill,
    sql,
    worker,
)

# Each a module of replay_ingest/commands/, in the order of the docstring's list.
COMMANDS: dict[str, Command] = {
    "worker": worker,
    "capture": capture,
    "run": run,
    "generate": generate,
    "produce": produce,
    "sql": sql,
    "sessions": sessions,
    "spill": spill,
    "delete": delete,
    "dlq": dlq,
    "player": player,
}


def build_parser() -> argparse.ArgumentParser:
    """Every command's arguments, each from its own module."""
    raw = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="replay-ingest", description=__doc__, formatter_class=raw)
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", help="one of the commands above"
    )
    for name, command in COMMANDS.items():
        command.configure(sub.add_parser(name, description=command.__doc__, formatter_class=raw))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"replay-ingest: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    return COMMANDS[args.command].handle(settings, args)


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # clickhouse-connect logs a traceback for every row its serialisers refuse; the sink
    # isolates such rows by halving (~2 log2 N refusals each) and counts them, so
    # hostile input would otherwise flood the log
    logging.getLogger("clickhouse_connect.driver.transform").setLevel(logging.CRITICAL)


if __name__ == "__main__":
    sys.exit(main())
