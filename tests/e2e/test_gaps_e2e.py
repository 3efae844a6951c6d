"""Gaps end to end (Tansu + a chDB worker): the batches dead-lettered on the two
recording inputs become the gaps of their sessions (session_recording_gaps, read by
sinks.clickhouse.player.session_gaps), hostile letters become none, a batch written
correctly later hides its gap, and good sessions have none. Then session_gaps on its
own (chDB in this process): what hides a gap, one row per batch, the order, the limit.
"""

from __future__ import annotations

import functools
from typing import Any

from clickhouse_connect.driver.client import Client

from sinks.clickhouse import player, queries
from sinks.clickhouse.schema import (
    ARCHIVE_PARTS_TABLE,
    GAPS_COLUMNS,
    GAPS_TABLE,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TABLE,
    connect,
)
from streams.topics import ITEMS_TOPIC
from tests import builders
from tests.builders import TS, items_headers
from tests.checks import ROWS_FINAL
from tests.stack import CAPTURE, Stack, WorkerProcess, wait_until

SESSION = "gap-session"
BUILDERS_NOW = 1_792_972_800_000  # the builders' envelope `now`, 2026-10-26T00:00Z
EXPIRY = {"chunk_ttl_seconds": "2", "chunk_expiry_interval_seconds": "0.5"}


def gaps_of(worker: WorkerProcess, session: str = SESSION, team: int = 1) -> list[dict[str, Any]]:
    return worker.sql(player.session_gaps(team, session).inline())


def metric(worker: WorkerProcess, name: str, reason: str) -> float:
    return worker.metric(f"replay_gaps_{name}_total", reason=reason)


def unattributed(worker: WorkerProcess, reason: str) -> bool:
    return metric(worker, "unattributed", reason) >= 1


def items(uuid: str, session: str = SESSION, **kwargs: Any) -> bytes:
    return builders.items_value(uuid=uuid, session_id=session, window_id="w-1", **kwargs)


def broken_lz4(uuid: str, timestamp: int) -> tuple[bytes, list[tuple[str, bytes]]]:
    """An items message whose lz4 block is garbage, with its capture headers."""
    value = (500).to_bytes(4, "little") + b"\xff" * 40
    headers = items_headers(session_id=SESSION, uuid=uuid, timestamp=str(timestamp))
    return value, [("content-encoding", b"lz4"), *headers]


def test_dead_letters_become_gaps_until_written(stack: Stack) -> None:
    stack.create_topics(ITEMS_TOPIC)
    worker = stack.worker(**EXPIRY).start()
    lz4_value, lz4_headers = broken_lz4("gap-lz4", TS + 200)
    stack.produce(
        [
            items("gap-invalid", items=[], timestamp=TS + 100),  # invalid_events
            lz4_value,
            items("gap-hostile-1", token="token-9"),  # unknown_token
            items("gap-hostile-2", token="token-disabled"),  # recording_disabled
            items("good-1", timestamp=TS + 300),
            items("good-2", session="good-session"),
        ],
        topic=ITEMS_TOPIC,
        headers=[None, lz4_headers, None, None, None, None],
    )
    pieces = builders.pieces_of(builders.events(40), 3, chunk_id="gap-set", session_id=SESSION)
    hostile = [
        builders.capture(team_id=2, session_id=SESSION, snapshot=snapshot("gap-hostile-3")),
        builders.capture(token="token-9", team_id=None, session_id=SESSION),
    ]
    stack.produce([*pieces[:2], *hostile])  # the set's last piece never comes

    expected = [
        {"window_id": "window-1", "timestamp_ms": BUILDERS_NOW, "reason": "chunk_expired"},
        {"window_id": "w-1", "timestamp_ms": TS + 100, "reason": "invalid_events"},
        {"window_id": SESSION, "timestamp_ms": TS + 200, "reason": "invalid_lz4"},
    ]
    wait_until(lambda: len(gaps_of(worker)) == 3, 120, "three gaps")
    assert gaps_of(worker) == [gap | {"batches": 1} for gap in expected]
    stored = worker.sql(f"SELECT chunk_id, stage, source_topic FROM {GAPS_TABLE} FINAL")
    assert {row["chunk_id"] for row in stored} == {"gap-invalid", "gap-lz4", "gap-set"}
    assert {(r["stage"], r["source_topic"]) for r in stored if r["chunk_id"] == "gap-set"} == {
        ("reassemble", CAPTURE)
    }
    assert metric(worker, "recorded", "chunk_expired") == 2  # two pieces, one gap

    # the hostile letters were read and made no gap, anywhere
    for reason in ("unknown_token", "recording_disabled", "team_mismatch"):
        wait_until(functools.partial(unattributed, worker, reason), 60, reason)
    assert worker.scalar(f"SELECT count() FROM {GAPS_TABLE} FINAL") == 3
    assert worker.scalar(f"SELECT count() FROM {GAPS_TABLE} WHERE team_id != 1") == 0
    assert gaps_of(worker, team=2) == [] and gaps_of(worker, team=3) == []

    # good sessions have no gap and their rows are intact
    wait_until(lambda: worker.scalar(ROWS_FINAL) == 2, 60, "the good rows")
    assert gaps_of(worker, "good-session") == []

    # the same batches written correctly (replayed after a fix) hide their gaps
    stack.produce([items("gap-invalid")], topic=ITEMS_TOPIC)
    stack.produce(pieces)
    wait_until(lambda: len(gaps_of(worker)) == 1, 120, "two gaps hidden")
    assert gaps_of(worker) == [expected[2] | {"batches": 1}]
    assert worker.scalar(ROWS_FINAL) == 4
    assert worker.metric("replay_gaps_failed_total") == 0


def snapshot(chunk_id: str) -> dict[str, Any]:
    return builders.snapshot_data(chunk_id=chunk_id)


# --- session_gaps on its own ------------------------------------------------------------


def gap_row(chunk_id: str, ts: int, reason: str = "invalid_events", **values: Any) -> list[Any]:
    row = {
        "team_id": 1,
        "session_id": SESSION,
        "window_id": "w-1",
        "chunk_id": chunk_id,
        "timestamp": ts,
        "reason": reason,
        "stage": "validate",
        "source_topic": ITEMS_TOPIC,
        "source_partition": 0,
        "source_offset": 1,
    } | values
    return [row[column] for column in GAPS_COLUMNS]


def read(client: Client, limit: int = 1000, team: int = 1) -> list[tuple[Any, ...]]:
    _, rows = queries.fetch(client, player.session_gaps(team, SESSION, limit))
    return rows


def test_session_gaps_one_row_per_batch_hidden_once_written(chdb_url: str) -> None:
    client = connect(chdb_url)
    rows = [
        gap_row("a", TS + 30),
        gap_row("a", TS + 30, "chunk_expired"),  # a later letter of the same batch wins
        gap_row("b", TS + 10),
        gap_row("c", TS + 10),  # same moment, window and reason: one marker of two
        gap_row("d", TS + 20, window_id="w-2"),
        gap_row("written", TS + 5),
        gap_row("archived", TS + 6),
        gap_row("other-team", TS + 7, team_id=2),
        gap_row("other-session", TS + 8, session_id="elsewhere"),
    ]
    for row in rows:  # one insert each: the replacing happens across parts too
        client.insert(GAPS_TABLE, [row], column_names=list(GAPS_COLUMNS))
    written = builders.snapshot_row("written", session_id=SESSION)
    client.insert(SNAPSHOT_TABLE, [written], column_names=list(SNAPSHOT_COLUMNS))
    client.insert(
        ARCHIVE_PARTS_TABLE,
        [[1, SESSION, 0, "complete", "k", 1, "e", "s", 1, ["x", "archived"]]],
        column_names=list(queries.PART_COLUMNS),
    )
    assert read(client) == [
        ("w-1", TS + 10, "invalid_events", 2),
        ("w-2", TS + 20, "invalid_events", 1),
        ("w-1", TS + 30, "chunk_expired", 1),
    ]
    assert read(client, limit=1) == [("w-1", TS + 10, "invalid_events", 2)]
    assert read(client, team=2) == [("w-1", TS + 7, "invalid_events", 1)]
    client.close()
