"""The SQL guard's decisions, on chDB in this process (no worker): what it refuses, what it
lets through, the limits it applies, and that nothing it refuses ever ran (its rules
over a parsed tree without an engine: tests/unit/test_sql_guard.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import QueryLimits
from sinks.clickhouse.schema import connect
from sinks.sql_guard import (
    QueryError,
    ReadOnlyViolation,
    SqlGuard,
    to_json,
)
from tests import builders

CANARY = "canary-5b1f0c"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A secret file and a team registry (with a read key) the probes try to read."""
    root = tmp_path_factory.mktemp("files")
    secret = root / "secret.tsv"
    secret.write_text(f"{CANARY}\t1\n")
    teams = root / "teams.json"
    teams.write_text(json.dumps([{"team_id": 1, "token": CANARY, "read_key": CANARY}]))
    return {"secret": secret, "teams": teams, "out": root / "out.txt"}


@pytest.fixture(scope="module")
def guard(chdb_url: str) -> Iterator[SqlGuard]:
    client = connect(chdb_url)
    yield SqlGuard(client, QueryLimits(max_result_rows=100))
    client.close()


@pytest.mark.parametrize("probe", builders.SQL_PROBES)
def test_probes_are_refused_before_they_run(
    guard: SqlGuard, files: dict[str, Path], probe: str
) -> None:
    sql = probe.format(**{name: str(path) for name, path in files.items()})
    with pytest.raises(ReadOnlyViolation) as refused:
        guard.query(sql)
    assert CANARY not in str(refused.value) and len(str(refused.value)) <= 200
    assert not files["out"].exists()


@pytest.mark.parametrize(
    ("sql", "rows"),
    [
        ("SELECT 1 AS one", [(1,)]),
        ("select number from numbers(3) -- a comment", [(0,), (1,), (2,)]),
        ("WITH t AS (SELECT 2 AS n) SELECT n FROM t", [(2,)]),
        (
            "SELECT 'file(''/etc/passwd'')' AS s, `x y` FROM (SELECT 1 AS `x y`)",
            [("file('/etc/passwd')", 1)],
        ),
        ("SELECT format('{} {}', 'a', 'b')", [("a b",)]),
        ("SELECT * FROM values('a UInt8', 1, 2)", [(1,), (2,)]),
        ("SELECT count() FROM session_recording_events FINAL", [(0,)]),
        ("SELECT count() FROM system.one AS file", [(1,)]),
        ("SELECT getSetting('readonly'), getSetting('max_result_rows')", [(1, 100)]),
        (
            "SHOW TABLES LIKE 'session_replay%'",
            [("session_replay_events",), ("session_replay_summary",)],
        ),
    ],
)
def test_reads_run_readonly_with_the_limits(guard: SqlGuard, sql: str, rows: list[tuple]) -> None:
    _, got = guard.query(sql)
    assert got == rows


def test_every_read_statement_kind_is_allowed(guard: SqlGuard) -> None:
    for sql in (
        "DESCRIBE TABLE session_replay_summary",
        "EXPLAIN SELECT count() FROM session_replay_summary",
        "EXPLAIN AST SELECT 1",
        "SHOW CREATE TABLE performance_events",
        "SHOW COLUMNS FROM session_recording_events",
        "SHOW DATABASES",
        "SELECT 1 INTERSECT SELECT 1",
        "DESCRIBE TABLE numbers(2)",
    ):
        columns, rows = guard.query(sql)
        assert columns and rows, sql


@pytest.mark.parametrize(
    ("limits", "sql", "code"),
    [
        (QueryLimits(max_result_rows=10), "SELECT number FROM numbers(100)", "396"),
        (QueryLimits(max_execution_seconds=0.3), "SELECT count() FROM numbers(1e13)", "159"),
        (
            QueryLimits(max_memory_bytes=8 << 20),
            "SELECT groupArray(number) FROM numbers(1e7)",
            "241",
        ),
    ],
)
def test_limits_stop_queries(guard: SqlGuard, limits: QueryLimits, sql: str, code: str) -> None:
    with pytest.raises(QueryError, match=f"^Code {code} "):
        SqlGuard(guard.client, limits).query(sql)


def test_long_statements_and_errors_are_short(guard: SqlGuard) -> None:
    with pytest.raises(QueryError, match="longer than"):
        SqlGuard(guard.client, QueryLimits(max_query_bytes=100)).query("SELECT " + "1+" * 60 + "1")
    with pytest.raises(QueryError) as failed:
        guard.query("SELECT no_such_column_" + "x" * 500 + " FROM system.one")
    assert len(str(failed.value)) <= 200 and "\n" not in str(failed.value)
    for bad in ("", "   ", "SELECT 'open", "SELECT 1 /* open"):
        with pytest.raises(QueryError):
            guard.query(bad)


DANGEROUS = [
    "file",
    "url",
    "s3",
    "remote",
    "hdfs",
    "executable",
    "mysql",
    "input",
    "azureBlobStorage",
]
GAPS = st.sampled_from([" ", "\n", "\t", " /* ( */ ", " -- )\n", "/**/"])


@st.composite
def disguised_calls(draw: st.DrawFn) -> str:
    """A dangerous call, spelled and placed in one of many ways, inside a read statement."""
    name = draw(st.sampled_from(DANGEROUS))
    spelled = draw(st.sampled_from([name, f"`{name}`", f'"{name}"', name.upper()]))
    call = f"{spelled}{draw(GAPS)}('{draw(st.sampled_from(['/etc/passwd', 'x']))}')"
    template = draw(
        st.sampled_from(
            [
                "SELECT * FROM {c}",
                "SELECT {c}",
                "DESCRIBE{g}{c}",
                "EXPLAIN{g}SELECT * FROM {c}",
                "WITH a AS (SELECT * FROM {c}) SELECT * FROM a",
                "SELECT * FROM numbers(1) AS n{g}LEFT JOIN {c} AS f ON 1",
                "SELECT 1 WHERE 1 IN (SELECT 1 FROM {c})",
                "SELECT * FROM (SELECT * FROM {c}){g}UNION ALL SELECT 1",
            ]
        )
    )
    prefix = draw(st.sampled_from(["", "/* SELECT 1 */ ", "-- x\n", "  "]))
    return prefix + template.format(c=call, g=draw(GAPS))


@settings(max_examples=150, deadline=None)
@given(sql=disguised_calls())
def test_no_disguise_gets_a_dangerous_call_through(guard: SqlGuard, sql: str) -> None:
    with pytest.raises(QueryError) as stopped:  # refused (403), or not even valid (400)
        guard.query(sql)
    assert "root:" not in str(stopped.value)


def test_results_encode_as_json(guard: SqlGuard) -> None:
    columns, rows = guard.query(
        "SELECT toIPv4('1.2.3.4') AS ip, toDecimal64(1.5, 2) AS d, map(1, 'a') AS m, "
        "toUInt256('2000000000000000000000000000000') AS huge, "
        "toUUID('00000000-0000-0000-0000-000000000001') AS u"
    )
    assert json.loads(to_json({"columns": columns, "rows": rows}))["rows"] == [
        ["1.2.3.4", "1.50", {"1": "a"}, 2 * 10**30, "00000000-0000-0000-0000-000000000001"]
    ]
