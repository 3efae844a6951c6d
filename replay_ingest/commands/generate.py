"""Write synthetic capture messages as JSON lines, the same for the same seed.

Each line is one capture message ready for `replay-ingest produce`: by default the
chunked format (topic session_recording_events); with `--format items`, one
`$snapshot_items` message per batch, plain JSON (topic
session_recording_snapshot_item_events), `--cv-rate` of its full snapshots and
mutations compressed the posthog-js way. `--truth` writes what each batch should become
in ClickHouse; `--performance` writes PerformanceEntry reports of the same sessions
(topic performance_events_batches).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import fields
from typing import BinaryIO

import msgspec

from config.settings import Settings
from config.teams import DEMO_TEAM_ID, DEMO_TOKEN
from replay_ingest.generator.sessions import GenerateOptions


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--sessions", type=int, required=True, metavar="N", help="how many sessions"
    )
    parser.add_argument("--seed", type=int, default=0, help="same seed, same bytes (default: 0)")
    parser.add_argument(
        "--output", "-o", default="-", metavar="FILE", help="where to write (default: stdout)"
    )
    parser.add_argument(
        "--truth", metavar="FILE", help="also write each batch's expected row (JSON lines)"
    )
    parser.add_argument(
        "--team",
        "--team-id",
        dest="team_id",
        type=int,
        metavar="ID",
        default=DEMO_TEAM_ID,
        help=f"team id in the messages (default: {DEMO_TEAM_ID})",
    )
    parser.add_argument(
        "--token", default=DEMO_TOKEN, help=f"capture token in the messages (default: {DEMO_TOKEN})"
    )
    parser.add_argument(
        "--format",
        choices=("chunked", "items"),
        default="chunked",
        help="chunked $snapshot pieces (default) or one $snapshot_items message per batch",
    )
    parser.add_argument(
        "--cv-rate",
        type=float,
        default=0.0,
        metavar="SHARE",
        help="--format items: share of full snapshots and mutations given cv (default: 0)",
    )
    _shape(parser)
    parser.add_argument(
        "--performance",
        metavar="FILE",
        help="also write PerformanceEntry reports of the same sessions here",
    )
    parser.add_argument(
        "--performance-truth",
        metavar="FILE",
        help="the expected performance_events row of every entry (JSON lines)",
    )


def _shape(parser: argparse.ArgumentParser) -> None:
    """Sizes and counts; the defaults are the production figures."""
    defaults = GenerateOptions(sessions=0)
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=defaults.chunk_size,
        metavar="CHARS",
        help=f"base64 characters per message piece (default: {defaults.chunk_size})",
    )
    parser.add_argument(
        "--large-full-snapshots",
        type=int,
        default=0,
        metavar="N",
        help="the first N sessions get a full snapshot over 2 MB (default: 0)",
    )
    parser.add_argument(
        "--incremental-size-mean",
        type=int,
        default=defaults.incremental_size_mean,
        metavar="BYTES",
        help=f"mean compressed size of an incremental batch (default: "
        f"{defaults.incremental_size_mean})",
    )
    parser.add_argument(
        "--incremental-count-mean",
        type=float,
        default=defaults.incremental_count_mean,
        metavar="N",
        help=f"mean incremental batches per session (default: {defaults.incremental_count_mean:g})",
    )


def handle(settings: Settings, args: argparse.Namespace) -> int:
    # every option is named as the GenerateOptions field it sets
    given = vars(args)
    opts = GenerateOptions(
        **{f.name: given[f.name] for f in fields(GenerateOptions) if f.name in given}
    )
    write = _write_items if args.format == "items" else _write_capture
    if args.output == "-":
        write(opts, sys.stdout.buffer, args.truth, args.cv_rate)
        sys.stdout.buffer.flush()
    else:
        with open(args.output, "wb") as out:
            write(opts, out, args.truth, args.cv_rate)
    if args.performance:
        _write_performance(opts, args.performance, args.performance_truth)
    return 0


def _write_capture(
    opts: GenerateOptions, out: BinaryIO, truth_path: str | None, cv_rate: float = 0.0
) -> None:
    from replay_ingest.generator.capture import generate

    with contextlib.ExitStack() as files:
        truth = files.enter_context(open(truth_path, "wb")) if truth_path else None
        for messages, batch in generate(opts):
            for message in messages:
                out.write(message + b"\n")
            if truth:
                truth.write(msgspec.json.encode(batch) + b"\n")


def _write_items(
    opts: GenerateOptions, out: BinaryIO, truth_path: str | None, cv_rate: float
) -> None:
    """Plain values only: a JSON line holds no gzip or lz4 bytes, nor headers."""
    from replay_ingest.generator.items import ItemsOptions, generate_items

    with contextlib.ExitStack() as files:
        truth = files.enter_context(open(truth_path, "wb")) if truth_path else None
        for record, batch in generate_items(opts, ItemsOptions(cv_rate=cv_rate)):
            out.write(record.value + b"\n")
            if truth:
                truth.write(msgspec.json.encode(batch) + b"\n")


def _write_performance(opts: GenerateOptions, path: str, truth_path: str | None) -> None:
    from replay_ingest.generator.performance import generate_performance

    with contextlib.ExitStack() as files:
        out = files.enter_context(open(path, "wb"))
        truth = files.enter_context(open(truth_path, "wb")) if truth_path else None
        for message, rows in generate_performance(opts):
            out.write(message + b"\n")
            if truth:
                truth.writelines(msgspec.json.encode(row) + b"\n" for row in rows)
