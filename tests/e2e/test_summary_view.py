"""The session view (SQL, on chDB) merges window parts exactly as the Python merge does,
every declared figure included; and the table made from the declaration has its
columns."""

from __future__ import annotations

import random
from typing import Any

from sinks.clickhouse.schema import (
    SESSION_FIELDS,
    SUMMARY_COLUMNS,
    SUMMARY_TABLE,
    SUMMARY_VIEW,
    connect,
    ensure_schema,
)
from sinks.sql_guard import query_read_only
from streams.clicks import rage_clicks
from streams.figures import merge_figures
from streams.parts import part_values
from streams.stats import active_milliseconds
from streams.windows import SessionWindows
from tests import builders

T0 = 1_793_000_000_000


def random_event(rng: random.Random, clock: list[int]) -> dict[str, Any]:
    ts = T0 + rng.randint(0, 60_000)
    clock[0] += rng.choice([0, 150, 700, 1200])  # clicks in time order, often linked
    x, y = rng.choice([0, 10, 25, 60]), rng.choice([0, 10])
    return rng.choice(
        [
            {"type": 3, "timestamp": ts, "data": {"source": rng.choice([1, 2, 5])}},
            {"type": 4, "timestamp": ts, "data": {"href": f"https://u/{rng.randint(0, 3)}"}},
            {"type": 2, "timestamp": ts, "data": {}},
            {"type": 3, "timestamp": clock[0], "data": {"source": 2, "type": 2, "x": x, "y": y}},
        ]
    )


def session_parts(rng: random.Random, session: str) -> tuple[list[tuple[object, ...]], Any]:
    """A session's part rows as the worker writes them, and the parts merged in Python."""
    windows = SessionWindows({}, size_ms=rng.choice([2_000, 10_000]), expiry_ms=0, dedup_seconds=1)
    clock = [T0]
    for i in range(rng.randint(1, 8)):
        events = [random_event(rng, clock) for _ in range(rng.randint(1, 6))]
        window = f"w{rng.randint(0, 1)}"
        stats = builders.batch_stats(events, window, session_id=session, chunk_id=f"{session}-{i}")
        windows.add(stats, 0, 0.0)
    rows = windows.due(0, 10**6)
    merged = rows[0].part.aggregate
    for row in rows[1:]:
        merged = merge_figures(merged, row.part.aggregate)
    return [part_values(row) for row in rows], merged


def test_summary_view_matches_python_merge(empty_chdb_url: str) -> None:
    client = connect(empty_chdb_url)
    ensure_schema(client)
    rng = random.Random(5)
    expected, rows = {}, []
    for s in range(40):
        part_rows, expected[f"s{s}"] = session_parts(rng, f"s{s}")
        rows += part_rows
    client.insert(SUMMARY_TABLE, rows, column_names=list(SUMMARY_COLUMNS))
    columns, result = query_read_only(client, f"SELECT * FROM {SUMMARY_VIEW}")
    assert len(result) == 40
    rage = 0
    for values in result:
        got = dict(zip(columns, values, strict=True))
        want = expected[got["session_id"]]
        assert got["active_milliseconds"] == active_milliseconds(want.active_segments)
        assert got["rage_click_count"] == rage_clicks(want.click_spans)
        assert got["first_url"] == want.first_url
        assert got["all_urls"] == sorted(want.all_urls)
        for name in ("click_count", "keypress_count", "event_count", "size", "distinct_id"):
            assert got[name] == getattr(want, name), name
        assert bool(got["has_full_snapshot"]) == want.has_full_snapshot
        assert int(got["start_time"].timestamp() * 1000) == want.min_first_timestamp
        rage += got["rage_click_count"]
    assert rage > 5, "the workload has rage clicks"


def test_the_tables_have_the_declared_columns(empty_chdb_url: str) -> None:
    client = connect(empty_chdb_url)
    ensure_schema(client)
    ensure_schema(client)  # idempotent, migrations included

    def columns(table: str) -> list[str]:
        query = (
            "SELECT name FROM system.columns "
            f"WHERE database = currentDatabase() AND table = '{table}' ORDER BY position"
        )
        return [name for (name,) in client.query(query).result_rows]

    assert columns(SUMMARY_TABLE)[: len(SUMMARY_COLUMNS)] == list(SUMMARY_COLUMNS)
    assert set(SESSION_FIELDS) <= set(columns(SUMMARY_VIEW))


def test_a_table_made_before_a_figure_existed_gains_it(empty_chdb_url: str) -> None:
    client = connect(empty_chdb_url)
    ensure_schema(client)
    newest = SUMMARY_COLUMNS[-1]  # the figure declared last
    client.command(f"ALTER TABLE {SUMMARY_TABLE} DROP COLUMN {newest}")
    ensure_schema(client)
    names = [row[0] for row in client.query(f"DESCRIBE TABLE {SUMMARY_TABLE}").result_rows]
    assert newest in names
    rows, _ = session_parts(random.Random(1), "s")
    client.insert(SUMMARY_TABLE, rows, column_names=list(SUMMARY_COLUMNS))
    assert client.query(f"SELECT count() FROM {SUMMARY_VIEW}").result_rows == [(1,)]
