"""Read-only queries from the command line, and printing their answers safely.

chDB allows one process per data directory: while a worker runs on chDB, a query goes
through it (`POST /api/sql` with the admin key); otherwise straight to ClickHouse.
Either way the SQL guard checks it. Printed values have their control characters
escaped: a crafted distinct_id or URL must not drive the terminal.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

import msgspec

from config.settings import Settings

FORMATS = ("jsonl", "table")


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


def print_query(settings: Settings, sql: str, output: str) -> int:
    """Run `sql` and print its rows as `output` (one of FORMATS); the exit status."""
    from sinks.sql_guard import to_json

    try:
        columns, rows = run_query(settings, sql)
    except Exception as exc:
        print(f"error: {printable(exc)}", file=sys.stderr)
        return 1
    if output == "table":
        print_table(columns, rows)
    else:
        for row in rows:
            sys.stdout.write(to_json(dict(zip(columns, row, strict=True))).decode())
            sys.stdout.write("\n")
    return 0


def print_table(columns: list[str], rows: list[Sequence[Any]]) -> None:
    """Aligned columns under a header and a rule, every value made printable."""
    names = [printable(c) for c in columns]
    cells = [[printable(v) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(names)]
    print("  ".join(c.ljust(w) for c, w in zip(names, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)))


def printable(value: Any) -> str:
    """`value` as text with control and other non-printable characters escaped (\\x1b,
    \\u202e...), so a crafted distinct_id or url cannot drive the terminal."""
    text = str(value)
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else repr(char)[1:-1] for char in text)


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
