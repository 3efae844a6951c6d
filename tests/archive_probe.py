"""Runs one step of an archive test inside a child process, on the worker's chDB (one
process per data directory, so never in pytest's own): `python -m tests.archive_probe
COMMAND` with the worker's environment and a JSON argument on stdin; prints JSON.

- ``sql``: {"statements": [...]} run with write access, in order (tables ensured first).
- ``query``: {"sql": "..."} -> {"rows": [...]}.
- ``spill-during``: {"during": {session_id: [statements]}} one spill run whose upload of
  a session runs that session's statements once its rows have been read (rows that
  arrive during the upload) -> the run's report.
- ``read``: {"team_id", "session_id"} -> the lines of `session_lines` with the peak of
  Python memory (tracemalloc) while producing them, and whether timestamps ascend.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import json
import sys
import tracemalloc
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from config.settings import load_settings
from config.teams import load_registry
from retention.read import session_lines
from retention.spill import Spiller
from sinks.clickhouse.queries import Query, fetch
from sinks.clickhouse.schema import connect, ensure_schema
from sinks.s3 import ObjectStore, Uploaded


def _client() -> Any:
    return connect(load_settings().clickhouse_url)


def _store() -> ObjectStore:
    settings = load_settings()
    return ObjectStore(settings.s3_url, settings.s3_endpoint_url)


def _query(client: Any) -> Any:
    def query(statement: Query) -> tuple[list[str], Sequence[Sequence[Any]]]:
        return fetch(client, statement)

    return query


class _ArrivingStore(ObjectStore):
    """The real store; once a session's rows are read for its object, more arrive."""

    during: dict[str, list[str]]
    chdb: Any

    async def upload_lines(self, key: str, lines: Iterable[bytes]) -> Uploaded:
        statements = next((s for sid, s in self.during.items() if f"={sid}." in key), [])

        def then_arrive() -> Iterator[bytes]:
            yield from lines
            for statement in statements:
                self.chdb.command(statement)

        return await super().upload_lines(key, then_arrive())


def spill_during(args: dict[str, Any]) -> dict[str, Any]:
    settings = load_settings()
    client = _client()
    store = _ArrivingStore(settings.s3_url, settings.s3_endpoint_url)
    store.during, store.chdb = args["during"], client
    spiller = Spiller(settings, load_registry(settings.teams_file), client, store)
    report = asyncio.run(spiller.spill_once())
    return dataclasses.asdict(report)


def read(args: dict[str, Any]) -> dict[str, Any]:
    query, store = _query(_client()), _store()

    async def main() -> dict[str, Any]:
        digest, count, size, last, ascending = hashlib.sha256(), 0, 0, -1, True
        lines = []
        await store.head("warm-up")  # botocore loads its S3 model once, ~10 MB: not the read's
        tracemalloc.start()
        async for line in session_lines(query, store, args["team_id"], args["session_id"]):
            count += 1
            size += len(line)
            digest.update(line + b"\n")
            timestamp = json.loads(line)["timestamp"]
            ascending = ascending and timestamp >= last
            last = timestamp
            if args.get("keep", True):
                lines.append(line.decode())
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        return {
            "count": count,
            "bytes": size,
            "peak": peak,
            "sha256": digest.hexdigest(),
            "ascending": ascending,
            "lines": lines,
        }

    return asyncio.run(main())


def main() -> None:
    command, args = sys.argv[1], json.loads(sys.stdin.read() or "{}")
    if command == "sql":
        client = _client()
        ensure_schema(client)
        for statement in args["statements"]:
            client.command(statement)
        out: Any = {"ok": True}
    elif command == "query":
        out = {"rows": [list(row) for row in _client().query(args["sql"]).result_rows]}
    elif command == "spill-during":
        out = spill_during(args)
    elif command == "read":
        out = read(args)
    else:
        raise SystemExit(f"unknown command {command}")
    sys.stdout.write(json.dumps(out, default=str))


if __name__ == "__main__":
    main()
