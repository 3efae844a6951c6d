"""The read-only SQL guard of `replay-ingest sql` and ``POST /api/sql``.

A statement from a user never reaches ClickHouse as typed. ClickHouse's own parser decides:

1. ``formatQuerySingleLine`` (the text passed as a bound parameter, so it is data, never
   run) parses it; more than one statement, or none, is refused. Its output, the
   canonical statement, is what is inspected and what runs: exactly one statement, with
   no comments, keywords in upper case, and identifiers quoted only where they must be.
2. ``EXPLAIN AST <canonical>`` (which only parses) gives the syntax tree, one node a line.
   The statement must be a SELECT/WITH, EXPLAIN, DESCRIBE or SHOW. What a query reads
   from is a table (``[database.]name``; chDB's default database also reads files named
   like `/etc/passwd` or `teams.json`) or one of a short allow-list of generator table
   functions (numbers, zeros, values...). No node anywhere may call another table function
   or a function that reads files or reaches hosts (the engine's own
   ``system.table_functions``, ``file``, the AI functions); no SETTINGS, no INTO OUTFILE.
3. The canonical statement runs with ``readonly=1`` (which also refuses any change of a
   setting) and the time, memory and result-row limits of :class:`QueryLimits`.

Why both 2 and 3: ``readonly=1`` alone lets ``DESCRIBE file('/etc/passwd')``, the scalar
``file()`` and ``INTO OUTFILE`` through, and chDB runs every statement of a multi-statement
text, the appended SETTINGS applying to the last one only. Errors come back as a short,
capped message (:func:`short_error`), never the server's full text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from config.settings import QueryLimits

ERROR_CHARS = 200

# Statement kinds (the root node of EXPLAIN AST) that only read.
READ_STATEMENTS = frozenset(
    {
        "SelectWithUnionQuery",
        "SelectIntersectExceptQuery",
        "Explain",
        "DescribeQuery",
        "ShowTables",  # SHOW TABLES / DATABASES / SETTINGS
        "ShowColumns",
        "ShowCreateTableQuery",
        "ShowCreateViewQuery",
        "ShowCreateDatabaseQuery",
    }
)
# Table functions that only generate values: the only ones allowed, and only these.
ALLOWED_TABLE_FUNCTIONS = frozenset(
    {"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generate_series", "generateseries"}
)
# Scalar functions named like a table function, harmless as scalars (format('{}', x)).
_HARMLESS_SCALARS = frozenset({"format"})
# Known to read files or reach hosts, whatever this engine's catalogue says (lower case).
_OUTSIDE = frozenset(
    {
        "file",
        "filecluster",
        "url",
        "urlcluster",
        "s3",
        "s3cluster",
        "gcs",
        "oss",
        "cosn",
        "remote",
        "remotesecure",
        "cluster",
        "clusterallreplicas",
        "hdfs",
        "hdfscluster",
        "mysql",
        "postgresql",
        "executable",
        "input",
        "jdbc",
        "odbc",
        "sqlite",
        "azureblobstorage",
        "azureblobstoragecluster",
        "iceberg",
        "deltalake",
        "hudi",
        "mongodb",
        "redis",
        "dictionary",
        "merge",
        "loop",
        "view",
        "filesystem",
        "python",
        "eval",
        "catboostevaluate",
        "naivebayesclassifier",
    }
)
_AI_FUNCTION = re.compile(r"ai[A-Z]")  # aiGenerate, aiEmbed...: they call remote models
_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NODE = re.compile(r"( *)(\S+) ?(.*)")
_NAME_END = re.compile(r" \((?:alias .*|children \d+)\)$")
_ERROR_END = re.compile(r"(?i:[.:]? in scope )|\(version |\n|Stack trace| \([A-Z][A-Z0-9_]+\)")


class QueryError(ValueError):
    """The query failed or is malformed; the message is short and safe to show (400)."""


class ReadOnlyViolation(QueryError):
    """The statement is refused by the guard (403)."""


@dataclass(frozen=True, slots=True)
class Node:
    """One line of EXPLAIN AST: depth, node type, and the rest (a name, for most)."""

    depth: int
    kind: str
    name: str


def ast_nodes(explain_lines: Sequence[str]) -> list[Node]:
    """Parse EXPLAIN AST output (one node a line, indented by depth)."""
    nodes = []
    for line in explain_lines:
        match = _NODE.fullmatch(line)
        if match:
            spaces, kind, rest = match.groups()
            name = rest
            while (cut := _NAME_END.search(name)) is not None:
                name = name[: cut.start()]
            nodes.append(Node(len(spaces), kind, name))
    return nodes


@dataclass(frozen=True, slots=True)
class Catalogue:
    """What the engine knows: its table functions and databases (names, lower case)."""

    table_functions: frozenset[str]
    databases: frozenset[str]

    @classmethod
    def of(cls, client: Client) -> Catalogue:
        functions = client.query("SELECT name FROM system.table_functions").result_rows
        databases = client.query("SELECT name FROM system.databases").result_rows
        return cls(
            frozenset(str(row[0]).lower() for row in functions) | _OUTSIDE,
            frozenset(str(row[0]).lower() for row in databases),
        )


def violation(nodes: Sequence[Node], catalogue: Catalogue) -> str | None:
    """Why this syntax tree is refused, or None if it only reads what it may."""
    if not nodes:
        return "empty statement"
    statement = 0
    while nodes[statement].kind == "Explain" and statement + 1 < len(nodes):
        statement += 1  # EXPLAIN is as safe as what it explains
    if nodes[0].kind not in READ_STATEMENTS or nodes[statement].kind not in READ_STATEMENTS:
        return "only SELECT, WITH, EXPLAIN, DESCRIBE and SHOW statements are allowed"
    if any(node.kind == "Set" for node in nodes):
        return "SETTINGS clauses are not allowed (queries run readonly, with fixed limits)"
    for index, node in enumerate(nodes):
        reason = _node_violation(node, catalogue)
        if reason is None and node.kind == "TableExpression" and index + 1 < len(nodes):
            reason = _table_violation(nodes[index + 1], node.depth + 1, catalogue)
        if reason is not None:
            return reason
    return None


def _node_violation(node: Node, catalogue: Catalogue) -> str | None:
    if node.kind == "Literal" and node.depth == 1:
        return "INTO OUTFILE is not allowed"
    if node.kind == "Function":
        name = node.name.lower()
        if name in ALLOWED_TABLE_FUNCTIONS or name in _HARMLESS_SCALARS:
            return None
        if name in catalogue.table_functions or _AI_FUNCTION.match(node.name):
            return f"function {node.name[:60]!r} reads files or reaches hosts; not allowed"
    if node.kind in ("TableIdentifier", "Identifier") and "/" in node.name:
        return "file paths are not allowed"
    return None


def _table_violation(node: Node, depth: int, catalogue: Catalogue) -> str | None:
    """The first child of a TableExpression: what the query reads from."""
    if node.depth != depth:
        return None
    if node.kind == "Function" and node.name.lower() not in ALLOWED_TABLE_FUNCTIONS:
        allowed = ", ".join(sorted(ALLOWED_TABLE_FUNCTIONS))
        return f"table function {node.name[:60]!r} is not allowed (only {allowed})"
    if node.kind == "TableIdentifier":
        parts = node.name.split(".")
        plain = all(_PLAIN_NAME.fullmatch(part) for part in parts) and len(parts) <= 2
        if not plain or (len(parts) == 2 and parts[0].lower() not in catalogue.databases):
            return f"table {node.name[:60]!r} is not a table name ([database.]name)"
    return None


def short_error(exc: BaseException, limit: int = ERROR_CHARS) -> str:
    """The gist of a ClickHouse error: code, name and first clause, capped; no echo of data."""
    text = str(exc)
    code = re.search(r"Code: (\d+)", text)
    name = re.search(r"\(([A-Z][A-Z0-9_]+)\)(?!.*\([A-Z][A-Z0-9_]+\))", text, re.S)
    message = text.rsplit("DB::Exception: ", 1)[-1]
    message = _ERROR_END.split(message, 1)[0].strip().rstrip(".:")
    if code:
        label = f"{code.group(1)} {name.group(1)}" if name else code.group(1)
        message = f"Code {label}: {message}"
    return message if len(message) <= limit else message[: limit - 1] + "…"


@dataclass
class SqlGuard:
    """Checks and runs users' statements on one client (one call at a time)."""

    client: Client
    limits: QueryLimits = field(default_factory=QueryLimits)
    _catalogue: Catalogue | None = None

    def canonical(self, sql: str) -> str:
        """The one statement of `sql` as ClickHouse formats it, if it may run."""
        if len(sql.encode()) > self.limits.max_query_bytes:
            raise QueryError(f"the statement is longer than {self.limits.max_query_bytes} bytes")
        try:
            rows = self.client.query(
                "SELECT formatQuerySingleLine({q:String})", parameters={"q": sql}
            ).result_rows
            statement = str(rows[0][0])
            explained = self.client.query(f"EXPLAIN AST {statement}").result_rows
            if self._catalogue is None:
                self._catalogue = Catalogue.of(self.client)
        except DatabaseError as exc:
            if "Multi-statements" in str(exc):
                raise ReadOnlyViolation("only one statement is allowed") from None
            raise QueryError(short_error(exc)) from None
        reason = violation(ast_nodes([str(row[0]) for row in explained]), self._catalogue)
        if reason is not None:
            raise ReadOnlyViolation(reason)
        return statement

    def query(self, sql: str) -> tuple[list[str], list[tuple[Any, ...]]]:
        """Column names and rows of a permitted statement, run under the limits."""
        statement = self.canonical(sql)
        try:
            result = self.client.query(statement, settings=self.limits.clickhouse_settings())
            return list(result.column_names), [tuple(row) for row in result.result_rows]
        except DatabaseError as exc:
            raise QueryError(short_error(exc)) from None


def query_read_only(
    client: Client, sql: str, limits: QueryLimits | None = None
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Run one user statement through the guard (see the module docstring)."""
    return SqlGuard(client, limits or QueryLimits()).query(sql)


def to_json(value: Any) -> bytes:
    """JSON of query results: values JSON lacks (IPs, Decimals, UUIDs...) become strings."""
    return msgspec.json.encode(value, enc_hook=str)
