"""Erase recordings: one or more sessions, every session of a person, or everything of
a team before a date, from every tier (ClickHouse rows, S3 objects, the archive index),
and print the proof: the sessions, the rows removed per table, the S3 keys deleted.

While a worker runs on chDB (which it owns), the request goes through its API with the
team's write key (from the team registry) and this waits for the proof. Otherwise the
request is recorded and carried out here, then and there (with a ClickHouse server, it
still waits two tombstone reloads of any running worker before deleting). A request is
recorded before anything is deleted, so one interrupted is finished by the next worker
run or `delete`. --dry-run prints what would be erased and changes nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
import time
import urllib.error
import urllib.request
from typing import Any

import msgspec

from config.settings import Settings

POLL_SECONDS = 0.5


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--team", type=int, required=True, help="the team's id")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--session", action="append", metavar="ID", help="a session (repeatable)")
    what.add_argument("--distinct-id", metavar="D", help="every session of this person")
    what.add_argument("--before", metavar="DATE", help="every session started before (ISO 8601)")
    parser.add_argument("--dry-run", action="store_true", help="print, change nothing")
    parser.add_argument(
        "--wait", type=float, default=120.0, metavar="SECONDS",
        help="through a running worker: how long to wait for the proof (default 120)",
    )  # fmt: skip


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from erasure.request import InvalidRequest, new_request

    asked = {"session_ids": args.session, "distinct_id": args.distinct_id, "before": args.before}
    try:
        request = new_request(args.team, asked, f"cli:{getpass.getuser()}")
    except InvalidRequest as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        return _dry_run(settings, request)
    if settings.chdb_path is not None:
        through = _through_worker(settings, args.team, asked, args.wait)
        if through is not None:
            return through
    return _in_process(settings, request)


def _dry_run(settings: Settings, request: Any) -> int:
    """What the request would erase now, read through the worker if it owns chDB."""
    from erasure.execute import Executor
    from replay_ingest.query import run_query

    def refuse(_: object) -> None:
        raise RuntimeError("a dry run writes nothing")

    executor = Executor(lambda q: run_query(settings, q.inline()), refuse, _store(settings), 0)
    sessions, found = asyncio.run(executor.preview(request))
    print(f"would erase {len(sessions)} session(s) of team {request.team_id}")
    _print_found(sessions, found.removed, found.keys)
    return 0


def _in_process(settings: Settings, request: Any) -> int:
    """Record the request and carry it out here (no worker owns chDB)."""
    from erasure.execute import Executor
    from erasure.schedule import settle_seconds
    from sinks.clickhouse.schema import connect, ensure_schema

    client = connect(settings.clickhouse_url)
    try:
        ensure_schema(client, settings.performance_ttl_days)
        # on chDB no worker runs (it would own the directory): nothing can be in flight
        settle = 0.0 if settings.chdb_path is not None else settle_seconds(settings)
        executor = Executor.on(client, _store(settings), settle)
        print(f"deletion {request.deletion_id} recorded", flush=True)
        done = asyncio.run(executor.carry_out(executor.record(request)))
    finally:
        client.close()
    _print_proof(done.proof())
    return 0


def _through_worker(
    settings: Settings, team: int, asked: dict[str, Any], wait: float
) -> int | None:
    """Post the request to the running worker and wait for its proof; None if no
    worker answers (then it is done in-process)."""
    from config.teams import load_registry

    entry = load_registry(settings.teams_file).by_id.get(team)
    if entry is None or not entry.write_key:
        print(f"error: team {team} has no write_key in the team registry", file=sys.stderr)
        return 2
    body = {k: v for k, v in asked.items() if v is not None}
    base = f"http://{settings.web_host}:{settings.web_port}"
    try:
        status, answer = _call(base + f"/api/teams/{team}/deletions", entry.write_key, body)
    except (urllib.error.URLError, ConnectionError):
        return None
    if status != 202:
        print(f"error: the worker answered {status}: {answer.get('error')}", file=sys.stderr)
        return 1
    print(f"deletion {answer['deletion_id']} recorded", flush=True)
    deadline = time.monotonic() + wait
    while True:
        status, proof = _call(base + answer["url"], entry.write_key)
        if status == 200 and proof.get("state") == "done":
            _print_proof(proof)
            return 0
        if time.monotonic() > deadline:
            print(f"not done after {wait:.0f}s (state {proof.get('state')}): the worker "
                  f"finishes it; follow {answer['url']}", file=sys.stderr)  # fmt: skip
            return 1
        time.sleep(POLL_SECONDS)


def _call(url: str, key: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else msgspec.json.encode(body)
    request = urllib.request.Request(url, data=data, method="GET" if body is None else "POST")
    request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, msgspec.json.decode(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, msgspec.json.decode(exc.read() or b"{}")


def _store(settings: Settings) -> Any:
    from sinks.s3 import ObjectStore

    return ObjectStore(
        settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
    )


def _print_proof(proof: dict[str, Any]) -> None:
    from replay_ingest.query import printable

    print(f"deletion {proof['deletion_id']} {proof['state']} at {proof['completed_at']}")
    _print_found(proof["sessions"], proof["removed"], proof["s3_keys"])
    print(printable(msgspec.json.encode(proof).decode()))


def _print_found(sessions: list[str], removed: dict[str, int], keys: list[str]) -> None:
    from replay_ingest.query import printable

    print(f"sessions: {printable(' '.join(sessions)) or '(none)'}")
    for tier, count in removed.items():
        print(f"  {tier:<34} {count}")
    for key in keys:
        print(f"  s3 {printable(key)}")
