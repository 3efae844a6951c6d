"""`replay-ingest`: the single entry point (worker, run, generate, produce, sql)."""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from typing import Any

import msgspec

from config.settings import Settings, SettingsError, load_settings

log = logging.getLogger("replay_ingest")


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


def _ensure_schema(settings: Settings) -> None:
    """Create the tables, waiting with backoff while ClickHouse is unreachable."""
    from sinks.clickhouse.schema import connect, ensure_schema

    delay = 0.5
    while True:
        try:
            client = connect(settings.clickhouse_url)
            ensure_schema(client, settings.performance_ttl_days)
            client.close()
            return
        except Exception as exc:
            log.warning("ClickHouse not ready (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(30.0, delay * 2)


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    import metrics
    from config.teams import load_registry
    from replay_ingest.worker import build_worker

    registry = load_registry(settings.teams_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _ensure_schema(settings)
    metrics.serve(settings.metrics_host, settings.metrics_port)
    metrics.WORKER_UP.set(1)
    app = build_worker(settings, registry)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
    return 0


def cmd_generate(settings: Settings, args: argparse.Namespace) -> int:
    from replay_ingest.generate import GenerateOptions, generate

    opts = GenerateOptions(
        sessions=args.sessions,
        seed=args.seed,
        chunk_size=args.chunk_size,
        team_id=args.team_id,
        token=args.token,
        large_full_snapshots=args.large_full_snapshots,
        incremental_size_mean=args.incremental_size_mean,
        incremental_count_mean=args.incremental_count_mean,
    )
    out = sys.stdout.buffer if args.output == "-" else open(args.output, "wb")  # noqa: SIM115
    truth = open(args.truth, "wb") if args.truth else None  # noqa: SIM115
    try:
        for messages, batch in generate(opts):
            for message in messages:
                out.write(message + b"\n")
            if truth:
                truth.write(msgspec.json.encode(batch) + b"\n")
    finally:
        out.flush()
        if out is not sys.stdout.buffer:
            out.close()
        if truth:
            truth.close()
    if args.performance:
        _generate_performance(opts, args.performance, args.performance_truth)
    return 0


def _generate_performance(opts: Any, path: str, truth_path: str | None) -> None:
    from replay_ingest.generate import generate_performance

    with open(path, "wb") as out:
        truth = open(truth_path, "wb") if truth_path else None  # noqa: SIM115
        try:
            for message, rows in generate_performance(opts):
                out.write(message + b"\n")
                for row in rows if truth else ():
                    truth.write(msgspec.json.encode(row) + b"\n")  # type: ignore[union-attr]
        finally:
            if truth:
                truth.close()


def _lines(source: str) -> Iterator[bytes]:
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        yield from stream
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()


def cmd_produce(settings: Settings, args: argparse.Namespace) -> int:
    from replay_ingest.localstack import create_topics
    from replay_ingest.produce import bootstrap_of, produce_lines

    bootstrap = bootstrap_of(settings.broker_url)

    async def main() -> int:
        await create_topics(bootstrap, [args.topic], settings.partitions)
        return await produce_lines(bootstrap, args.topic, _lines(args.file), rate=args.rate)

    asyncio.run(main())
    return 0


def _query_worker(settings: Settings, sql: str) -> dict[str, Any] | None:
    """Ask a running worker (the chDB owner) with the admin key; None if no worker answers."""
    from config.settings import read_admin_key

    url = f"http://{settings.web_host}:{settings.web_port}/api/sql"
    request = urllib.request.Request(url, data=sql.encode(), method="POST")
    key = read_admin_key(settings)
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    timeout = settings.sql_max_execution_seconds + 30
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return _answer(response.read())
    except urllib.error.HTTPError as exc:
        return _answer(exc.read(), exc.code)
    except (urllib.error.URLError, ConnectionError):
        return None


def _answer(body: bytes, status: int = 200) -> dict[str, Any]:
    try:
        answer = msgspec.json.decode(body)
    except msgspec.DecodeError:
        answer = None
    if not isinstance(answer, dict):
        return {"error": f"the worker's web port answered HTTP {status} without a JSON object"}
    return answer


def run_query(settings: Settings, sql: str) -> tuple[list[str], list[Sequence[Any]]]:
    """Read-only query: through the worker while it owns chDB, else directly, guarded."""
    from sinks.clickhouse.schema import connect
    from sinks.sql_guard import query_read_only

    if settings.chdb_path is not None:
        answer = _query_worker(settings, sql)
        if answer is not None:
            if "error" in answer:
                raise RuntimeError(answer["error"])
            return answer["columns"], answer["rows"]
    client = connect(settings.clickhouse_url)
    try:
        columns, rows = query_read_only(client, sql, settings.sql_limits)
    finally:
        client.close()
    return columns, [list(row) for row in rows]


def _printable(value: Any) -> str:
    """`value` as text with control and other non-printable characters escaped (\\x1b,
    \\u202e...), so a crafted distinct_id or url cannot drive the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


def _print_table(columns: list[str], rows: list[Sequence[Any]]) -> None:
    names = [_printable(c) for c in columns]
    cells = [[_printable(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(names)]
    print("  ".join(c.ljust(w) for c, w in zip(names, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def cmd_sql(settings: Settings, args: argparse.Namespace) -> int:
    return _print_query(settings, args.query, args.format)


def cmd_sessions(settings: Settings, args: argparse.Namespace) -> int:
    return _sessions_get(settings, args) if args.action == "get" else _sessions_list(settings, args)


def _sessions_get(settings: Settings, args: argparse.Namespace) -> int:
    """Print a session's events as JSON lines, from ClickHouse or S3 alike."""
    from retention.read import session_lines
    from sinks.clickhouse.queries import Query
    from sinks.ids import is_safe_id
    from sinks.s3 import ObjectStore

    if not is_safe_id(args.session):
        print("error: --session is not a valid id", file=sys.stderr)
        return 2
    store = ObjectStore(settings.s3_url, settings.s3_endpoint_url)

    def query(statement: Query) -> tuple[list[str], list[Sequence[Any]]]:
        return run_query(settings, statement.inline())  # text: it may go through /api/sql

    async def main() -> int:
        count = 0
        async for line in session_lines(query, store, args.team, args.session):
            sys.stdout.buffer.write(line + b"\n")
            count += 1
        return count

    if asyncio.run(main()) == 0:
        print("error: no such session", file=sys.stderr)
        return 1
    return 0


def cmd_spill(settings: Settings, args: argparse.Namespace) -> int:
    from config.teams import load_registry
    from retention.spill import Spiller
    from sinks.clickhouse.schema import connect, ensure_schema
    from sinks.s3 import ObjectStore, S3Rejected, S3Unavailable

    registry = load_registry(settings.teams_file)
    client = connect(settings.clickhouse_url)
    ensure_schema(client, settings.performance_ttl_days)
    store = ObjectStore(
        settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
    )
    try:
        report = asyncio.run(Spiller(settings, registry, client, store).spill_once())
    except S3Unavailable as exc:
        print(f"error: S3 unavailable, nothing deleted: {exc}", file=sys.stderr)
        return 1
    except S3Rejected as exc:  # the bucket itself, before any session
        print(f"error: S3 refused the bucket, nothing deleted: {exc}", file=sys.stderr)
        return 1
    print(f"archived {report.archived} session(s)")
    for failure in report.failures:
        print(
            f"error: team {failure.team_id} session {failure.session_id!r} not archived "
            f"({failure.reason}; nothing deleted, the next run tries again): {failure.error}",
            file=sys.stderr,
        )
    return 1 if report.failures else 0


def cmd_dlq(settings: Settings, args: argparse.Namespace) -> int:
    from api.params import BadRequest, parse_time
    from replay_ingest import dlq
    from replay_ingest.produce import bootstrap_of

    try:
        since = parse_time(args.since, "--since")
        topics = dlq.dlq_topics(args.topic)
    except (BadRequest, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    bootstrap = bootstrap_of(settings.broker_url)
    if args.action == "list":
        print("\n".join(dlq.run_list(bootstrap, topics, args.reason, since)))
        return 0
    result = asyncio.run(dlq.replay(bootstrap, topics, args.reason, since, args.dry_run))
    print("\n".join(result.lines(args.reason, args.dry_run)))
    return 0


def _sessions_list(settings: Settings, args: argparse.Namespace) -> int:
    from api.params import BadRequest, parse_time
    from sinks.clickhouse.queries import sessions_query

    try:
        since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    except BadRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    query = sessions_query(args.team, since, until, args.limit)
    return _print_query(settings, query.inline(), args.format)


def _print_query(settings: Settings, sql: str, output: str) -> int:
    from sinks.sql_guard import to_json

    try:
        columns, rows = run_query(settings, sql)
    except Exception as exc:
        print(f"error: {_printable(exc)}", file=sys.stderr)
        return 1
    if output == "table":
        _print_table(columns, rows)
    else:
        for row in rows:
            sys.stdout.write(to_json(dict(zip(columns, row, strict=True))).decode())
            sys.stdout.write("\n")
    return 0


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    from replay_ingest.run import run_local_stack

    return run_local_stack(settings, rate=args.rate, seed=args.seed)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="replay-ingest", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("worker", help="run the stream-processing worker (Faust)")

    run = sub.add_parser("run", help="embedded local stack: Tansu + worker on chDB + generator")
    run.add_argument("--rate", type=float, default=20.0, help="messages per second to feed")
    run.add_argument("--seed", type=int, default=0)

    gen = sub.add_parser("generate", help="write synthetic capture messages as JSON lines")
    gen.add_argument("--sessions", type=int, required=True)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument("--chunk-size", type=int, default=900_000, help="characters per piece")
    gen.add_argument("--truth", help="write per-batch ground truth (JSON lines) here")
    gen.add_argument("--output", "-o", default="-")
    gen.add_argument("--team-id", type=int, default=1)
    gen.add_argument("--token", default="phc_demo_token")
    gen.add_argument(
        "--large-full-snapshots",
        type=int,
        default=0,
        help="this many sessions get a full snapshot over 2 MB",
    )
    gen.add_argument("--incremental-size-mean", type=int, default=14_000)
    gen.add_argument("--incremental-count-mean", type=float, default=40)
    gen.add_argument(
        "--performance",
        metavar="FILE",
        help="also write PerformanceEntry batches of the same sessions here",
    )
    gen.add_argument(
        "--performance-truth",
        metavar="FILE",
        help="the expected performance_events row of every entry (JSON lines)",
    )

    prod = sub.add_parser("produce", help="send JSON lines to a Kafka topic")
    prod.add_argument("--topic", required=True)
    prod.add_argument("--rate", type=float, default=None, help="messages per second (default: max)")
    prod.add_argument("file", nargs="?", default="-")

    sql = sub.add_parser("sql", help="read-only query against the configured ClickHouse")
    sql.add_argument("--format", choices=("jsonl", "table"), default="table")
    sql.add_argument("query")

    sessions = sub.add_parser("sessions", help="session summaries for analysts")
    sessions_sub = sessions.add_subparsers(dest="action", required=True)
    listing = sessions_sub.add_parser("list", help="a team's newest sessions")
    listing.add_argument("--team", type=int, required=True)
    listing.add_argument("--since", help="ISO 8601 date or date-time (UTC if naive)")
    listing.add_argument("--until", help="ISO 8601 date or date-time (UTC if naive)")
    listing.add_argument("--limit", type=int, default=100)
    listing.add_argument("--format", choices=("jsonl", "table"), default="table")
    getting = sessions_sub.add_parser("get", help="a session's events as JSON lines (hot or cold)")
    getting.add_argument("--team", type=int, required=True)
    getting.add_argument("--session", required=True)

    from streams.topics import DLQ_TOPICS

    dlq = sub.add_parser("dlq", help="inspect and replay dead letters")
    dlq_sub = dlq.add_subparsers(dest="action", required=True)
    dlq_list = dlq_sub.add_parser("list", help="counts by DLQ and reason, with samples")
    dlq_replay = dlq_sub.add_parser(
        "replay", help="re-inject into the input topic of each letter's DLQ, once"
    )
    for action in (dlq_list, dlq_replay):
        action.add_argument(
            "--topic", choices=sorted(DLQ_TOPICS), help="one DLQ topic (default: all)"
        )
        action.add_argument("--since", help="ISO 8601 date or date-time (UTC if naive)")
    dlq_list.add_argument("--reason")
    dlq_replay.add_argument("--reason", required=True)
    dlq_replay.add_argument("--dry-run", action="store_true")

    spill = sub.add_parser("spill", help="move sessions past retention to S3")
    spill.add_argument(
        "--once",
        action="store_true",
        required=True,
        help="one pass now (the worker's leader also spills periodically)",
    )
    return parser


COMMANDS = {
    "worker": cmd_worker,
    "run": cmd_run,
    "generate": cmd_generate,
    "produce": cmd_produce,
    "sql": cmd_sql,
    "sessions": cmd_sessions,
    "spill": cmd_spill,
    "dlq": cmd_dlq,
}


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"replay-ingest: configuration error: {exc}", file=sys.stderr)
        return 2
    _setup_logging(settings)
    return COMMANDS[args.command](settings, args)


if __name__ == "__main__":
    sys.exit(main())
