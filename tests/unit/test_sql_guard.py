"""The SQL guard's pure parts: its rules over a parsed statement tree, without an
engine, and the short errors it hands back (on chDB: tests/e2e/test_sql_guard.py)."""

from __future__ import annotations

from sinks.sql_guard import Catalogue, Node, ast_nodes, short_error, violation

CANARY = "canary-5b1f0c"


def test_short_error_keeps_code_name_and_first_clause() -> None:
    error = RuntimeError(
        "Code: 60. DB::Exception: Unknown table expression identifier 'x' in scope "
        f"SELECT * FROM x WHERE s = '{CANARY}'. (UNKNOWN_TABLE) (version 26.9.2.1)\nStack trace"
    )
    assert short_error(error) == "Code 60 UNKNOWN_TABLE: Unknown table expression identifier 'x'"
    assert len(short_error(RuntimeError("y" * 5000))) == 200


CATALOGUE = Catalogue(frozenset({"file", "url", "numbers"}), frozenset({"default", "system"}))


def nodes(text: str) -> list[Node]:
    return ast_nodes(text.strip("\n").splitlines())


def test_tree_rules_without_an_engine() -> None:
    select = "SelectWithUnionQuery (children 1)\n ExpressionList (children 1)\n  SelectQuery\n"
    table = (
        select + "   TablesInSelectQuery\n    TablesInSelectQueryElement\n     TableExpression\n"
    )
    assert violation(nodes(table + "      Function numbers (children 1)"), CATALOGUE) is None
    assert "file" in str(violation(nodes(table + "      Function file (children 1)"), CATALOGUE))
    unknown = table + "      Function newFancyStore (alias x) (children 1)"
    assert "not allowed" in str(violation(nodes(unknown), CATALOGUE))  # allow-list
    assert violation(nodes(table + "      TableIdentifier system.one"), CATALOGUE) is None
    for name in ("teams.json", "/etc/passwd", "a.b.c", "x y"):
        assert violation(nodes(table + f"      TableIdentifier {name}"), CATALOGUE), name
    assert violation(nodes(select + "   Function url (alias f) (children 1)"), CATALOGUE)
    assert (
        violation(nodes(select + " Literal '/tmp/out'"), CATALOGUE) == "INTO OUTFILE is not allowed"
    )
    assert "SETTINGS" in str(violation(nodes(select + "  Set"), CATALOGUE))
    assert violation(nodes("InsertQuery (children 1)"), CATALOGUE)
    assert violation(nodes("Explain EXPLAIN (children 1)\n DropQuery t"), CATALOGUE)
    assert violation([], CATALOGUE) == "empty statement"
