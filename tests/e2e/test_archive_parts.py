"""Retention that loses nothing, on Tansu + chDB + moto: the spill deletes only the rows it
uploaded, rows that arrive for an archived session become its next part (also across a
kill -9), readers get every event once from both tiers in bounded memory, and one
session failing for good neither stops the others nor loses its rows (part keys, S3
error classes and the merge of both tiers alone: tests/unit/test_archive.py)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from config.settings import load_settings
from config.teams import TeamRegistry
from retention.read import parse_line, session_lines
from retention.report import Candidate
from retention.spill import Spiller
from sinks.clickhouse import queries
from sinks.clickhouse.queries import Query, fetch
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS, SNAPSHOT_TABLE, connect
from sinks.s3 import ObjectStore
from sinks.s3_keys import part_key
from tests.builders import batch_row
from tests.checks import cli, key_of, lines_of
from tests.s3_proxy import FaultProxy, Rejection
from tests.stack import (
    AWS,
    BUCKET,
    PREFIX,
    Ingest,
    S3Server,
    Stack,
    WorkerProcess,
    archived_events,
    archived_pairs,
    wait_until,
)
from tests.workloads import NOW, past_retention

# --- helpers on the real stack ------------------------------------------------------------

SNAPSHOT_INSERT = (
    "INSERT INTO session_recording_events (team_id, distinct_id, session_id, window_id, "
    "chunk_id, chunk_count, first_timestamp, last_timestamp, has_full_snapshot, event_count, "
    "size, snapshot_data) "
)


def probe(worker: WorkerProcess, command: str, args: dict[str, Any]) -> Any:
    out = subprocess.run(
        [sys.executable, "-m", "tests.archive_probe", command],
        input=json.dumps(args).encode(),
        env=worker.env,
        capture_output=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr.decode()[-3000:]
    return json.loads(out.stdout)


def query(worker: WorkerProcess, sql: str) -> list[list[Any]]:
    return probe(worker, "query", {"sql": sql})["rows"]


def literal(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def late_events(session: dict[str, Any], count: int, tag: str) -> list[dict[str, Any]]:
    """Events inside the session's span on timestamps no event of it has (a unique order)."""
    taken = {e["timestamp"] for e in session["events"]}
    step = max(1, (session["end"] - session["start"]) // (count + 1))
    out = []
    for n in range(1, count + 1):
        ts = session["start"] + n * step
        while ts in taken:
            ts += 1
        taken.add(ts)
        out.append({"type": 3, "timestamp": ts, "data": {"source": 1, "late": f"{tag}-{n}"}})
    return out


def insert_row(session_id: str, chunk_id: str, events: list[dict[str, Any]]) -> str:
    """A raw row written as the worker would, for a batch that arrives late."""
    first, last = min(e["timestamp"] for e in events), max(e["timestamp"] for e in events)
    text = json.dumps(events)
    return (
        f"{SNAPSHOT_INSERT} VALUES (1, 'late-distinct', {literal(session_id)}, 'late-window', "
        f"{literal(chunk_id)}, 1, fromUnixTimestamp64Milli({first}, 'UTC'), "
        f"fromUnixTimestamp64Milli({last}, 'UTC'), false, {len(events)}, {len(text)}, "
        f"{literal(text)})"
    )


def copy_row(session_id: str, chunk_id: str) -> str:
    """The same batch written again (a redelivery or DLQ replay): a newer version of it."""
    columns = SNAPSHOT_INSERT.split("(", 1)[1].split(")", 1)[0]
    return (
        f"{SNAPSHOT_INSERT} SELECT {columns} FROM session_recording_events FINAL "
        f"WHERE session_id = {literal(session_id)} AND chunk_id = {literal(chunk_id)}"
    )


def hot_chunks(worker: WorkerProcess, session_id: str) -> list[str]:
    rows = query(
        worker,
        "SELECT chunk_id FROM session_recording_events FINAL "
        f"WHERE session_id = {literal(session_id)} ORDER BY chunk_id",
    )
    return [r[0] for r in rows]


def read(worker: WorkerProcess, session_id: str) -> list[dict[str, Any]]:
    """The session through `session_lines` (the CLI), checked to be in timestamp order."""
    out = cli(worker, "sessions", "get", "--team", "1", "--session", session_id)
    assert out.returncode == 0, out.stderr.decode()
    events = [json.loads(line) for line in out.stdout.splitlines()]
    assert [e["timestamp"] for e in events] == sorted(e["timestamp"] for e in events)
    return events


def merged(*groups: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Events of the groups in timestamp order (stable: the workload's own order first)."""
    return sorted((e for g in groups for e in g), key=lambda e: e["timestamp"])


def by_start(expected: dict[str, dict[str, Any]]) -> list[str]:
    """Sessions past retention in the order the spill takes them."""
    return sorted(past_retention(expected), key=lambda s: (expected[s]["start"], s))


def spill(worker: WorkerProcess, **env: str) -> str:
    out = cli(worker, "spill", **env)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode()


# --- 1. the spill deletes only what it uploaded; 2. late rows become the next part -------


def test_rows_arriving_during_the_upload_stay_and_become_the_next_part(
    ingested: Ingest, s3_server: S3Server
) -> None:
    worker, expected = ingested(6, seed=51)
    archived = by_start(expected)
    target = archived[0]
    uploaded = hot_chunks(worker, target)
    replayed = json.loads(
        query(
            worker,
            "SELECT snapshot_data FROM session_recording_events FINAL "
            f"WHERE session_id = {literal(target)} AND chunk_id = {literal(uploaded[-1])}",
        )[0][0]
    )
    late = late_events(expected[target], 3, "during")
    during = {target: [insert_row(target, "late-during", late), copy_row(target, uploaded[0])]}

    report = probe(worker, "spill-during", {"during": during})
    assert report == {"archived": len(archived), "failures": []}
    stored = s3_server.objects()
    base = key_of(target, expected[target]["start"])
    assert set(stored) == {key_of(s, expected[s]["start"]) for s in archived}
    # what was read, no more
    assert archived_events(lines_of(stored[base])) == expected[target]["events"]
    # the new batch stayed; the newer copy of an uploaded batch went with it (same events)
    assert hot_chunks(worker, target) == ["late-during"]
    whole = merged(expected[target]["events"], late)
    assert read(worker, target) == whole  # archived part + hot remainder, each event once

    assert "archived 1 session(s)" in spill(worker)
    stored = s3_server.objects()
    assert len(stored) == len(archived) + 1
    assert archived_pairs(lines_of(stored[part_key(base, 1)])) == [("late-window", e) for e in late]
    assert hot_chunks(worker, target) == []
    assert read(worker, target) == whole
    index = query(
        worker,
        "SELECT toString(state), event_count, key FROM session_recording_archive FINAL "
        f"WHERE session_id = {literal(target)}",
    )
    assert index == [["complete", len(whole), base]]

    # a batch of part 0 delivered again later (a DLQ replay): never read twice, dropped
    probe(worker, "sql", {"statements": [insert_row(target, uploaded[-1], replayed)]})
    assert hot_chunks(worker, target) == [uploaded[-1]]
    assert read(worker, target) == whole
    assert "archived 0 session(s)" in spill(worker)
    assert set(s3_server.objects()) == set(stored)
    assert hot_chunks(worker, target) == []
    for session_id in archived[1:]:
        assert read(worker, session_id) == expected[session_id]["events"]


@pytest.mark.parametrize("step", ["object", "upload", "delete"])
def test_late_part_killed_between_steps_converges(
    ingested: Ingest, s3_server: S3Server, step: str
) -> None:
    worker, expected = ingested(5, seed=52)
    archived = by_start(expected)
    spill(worker)
    targets = archived[:2]
    late = {s: late_events(expected[s], 2, f"{step}-{s}") for s in targets}
    inserts = [insert_row(s, f"late-{n}", late[s]) for n, s in enumerate(targets)]
    probe(worker, "sql", {"statements": inserts})
    part0 = s3_server.objects()

    crashed = cli(worker, "spill", REPLAY_SPILL_CRASH_AFTER=step)
    assert crashed.returncode == -9, crashed.stderr.decode()
    first, base = targets[0], key_of(targets[0], expected[targets[0]]["start"])
    assert set(s3_server.objects()) == set(part0) | {part_key(base, 1)}
    indexed = query(
        worker,
        "SELECT part, toString(max(state)) FROM session_recording_archive_parts "
        f"WHERE session_id = {literal(first)} GROUP BY part ORDER BY part",
    )
    assert indexed == [[0, "complete"]] + ([] if step == "object" else [[1, "uploaded"]])
    assert hot_chunks(worker, first) == ([] if step == "delete" else ["late-0"])
    whole = {s: merged(expected[s]["events"], late[s]) for s in targets}
    assert read(worker, first) == whole[first]  # between the crash and the rerun too

    assert "archived 2 session(s)" in spill(worker)
    stored = s3_server.objects()
    assert set(stored) == set(part0) | {
        part_key(key_of(s, expected[s]["start"]), 1) for s in targets
    }
    for session_id in archived:
        assert (
            stored[key_of(session_id, expected[session_id]["start"])]
            == part0[key_of(session_id, expected[session_id]["start"])]
        )
        assert read(worker, session_id) == whole.get(session_id, expected[session_id]["events"])
    for session_id in targets:
        key = part_key(key_of(session_id, expected[session_id]["start"]), 1)
        assert archived_events(lines_of(stored[key])) == late[session_id]
        assert hot_chunks(worker, session_id) == []


# --- 3. one session failing for good ------------------------------------------------------


def test_a_session_failing_for_good_does_not_stop_the_others(
    ingested: Ingest, s3_server: S3Server
) -> None:
    worker, expected = ingested(8, seed=53)
    archived = by_start(expected)
    assert len(archived) >= 4
    pending, rejected, slow = archived[:3]
    # `pending`: indexed by a run killed after its upload, then its object is gone
    crashed = cli(worker, "spill", REPLAY_SPILL_CRASH_AFTER="upload")
    assert crashed.returncode == -9
    pending_key = key_of(pending, expected[pending]["start"])
    assert set(s3_server.objects()) == {pending_key}
    blob = s3_server.objects()[pending_key]
    s3_server.client().delete_object(Bucket=BUCKET, Key=pending_key)
    # `bad.id`: raw rows whose session id can form no key (written by some older writer)
    old = int((NOW - timedelta(days=10)).timestamp() * 1000)
    bad_events = [{"type": 3, "timestamp": old, "data": {}}]
    probe(
        worker,
        "sql",
        {
            "statements": [
                insert_row("bad.id", "bad-chunk", bad_events),
                "INSERT INTO session_replay_events (team_id, session_id, window_start, part_id, "
                "version, distinct_id, min_first_timestamp, max_last_timestamp, event_count, "
                f"message_count) VALUES (1, 'bad.id', fromUnixTimestamp64Milli({old}, 'UTC'), "
                f"'p', 1, 'd', fromUnixTimestamp64Milli({old}, 'UTC'), "
                f"fromUnixTimestamp64Milli({old}, 'UTC'), 1, 1)",
            ]
        },
    )
    held = {s: hot_chunks(worker, s) for s in (pending, rejected, "bad.id")}
    proxy = FaultProxy(s3_server.port)
    proxy.rejections[rejected] = Rejection(403, "AccessDenied")
    proxy.rejections[slow] = Rejection(503, "SlowDown", times=2)
    try:
        out = cli(worker, "spill", REPLAY_S3_ENDPOINT_URL=proxy.endpoint)
        assert out.returncode == 1
        assert f"archived {len(archived) - 2} session(s)" in out.stdout.decode()
        errors = out.stderr.decode()
        assert f"session '{pending}' not archived (missing_object" in errors
        assert f"session '{rejected}' not archived (s3_rejected" in errors
        assert "AccessDenied" in errors
        assert "session 'bad.id' not archived (unsafe_id" in errors
        assert proxy.rejections[slow].served == 2  # SlowDown twice, retried, archived
        assert proxy.rejections[rejected].served == 1  # a permanent 4xx is not retried
        assert {s: hot_chunks(worker, s) for s in held} == held  # nothing of theirs deleted

        # the worker's own spill counts each failure and tries again, run after run
        worker.env |= {
            "REPLAY_S3_ENDPOINT_URL": proxy.endpoint,
            "REPLAY_SPILL_INTERVAL_SECONDS": "1",
        }
        worker.start()
        reasons = ("missing_object", "s3_rejected", "unsafe_id")
        wait_until(
            lambda: all(
                worker.metric("replay_spill_failures_total", reason=r) >= 2 for r in reasons
            ),
            120,
            "every failing session reported by two runs",
        )
        assert proxy.rejections[rejected].served >= 3
        assert worker.metric("replay_sessions_archived_total") == 0
        # the operator restores the object and grants access: the next runs complete them
        s3_server.client().put_object(Bucket=BUCKET, Key=pending_key, Body=blob)
        del proxy.rejections[rejected]
        wait_until(
            lambda: worker.metric("replay_sessions_archived_total") == 2,
            120,
            "the two sessions archived once fixed",
        )
        worker.stop()
    finally:
        proxy.close()
    stored = s3_server.objects()
    assert set(stored) == {key_of(s, expected[s]["start"]) for s in archived}
    for session_id in archived:
        key = key_of(session_id, expected[session_id]["start"])
        assert archived_events(lines_of(stored[key])) == expected[session_id]["events"]
        assert hot_chunks(worker, session_id) == []
    assert hot_chunks(worker, "bad.id") == ["bad-chunk"]


# --- 4. bounded memory from both tiers ----------------------------------------------------

BIG_ROWS, EVENTS_PER_ROW, TEXT_BYTES = 2000, 4, 7000
PEAK_BOUND = 12 * 1024 * 1024


def big_session_sql(session_id: str, start: int) -> list[str]:
    """A session of BIG_ROWS batches of EVENTS_PER_ROW ~9 KB events (incompressible text),
    each batch overlapping the next in time; and its summary, past retention."""
    event = (
        'concat(\'{"type":3,"timestamp":\', toString(ts), '
        '\',"data":{"source":5,"text":"\', base64Encode(randomString('
        f"{TEXT_BYTES})), '\"}}}}')"
    )
    return [
        f"{SNAPSHOT_INSERT} SELECT 1, 'd', {literal(session_id)}, 'w', "
        "concat('c', leftPad(toString(number), 6, '0')), 1, "
        f"fromUnixTimestamp64Milli({start} + number * 1000, 'UTC'), "
        f"fromUnixTimestamp64Milli({start} + number * 1000 + 1800, 'UTC'), false, "
        f"{EVENTS_PER_ROW}, 40000, concat('[', arrayStringConcat(arrayMap(ts -> {event}, "
        f"arrayMap(i -> {start} + number * 1000 + i * 600, range({EVENTS_PER_ROW}))), ','), "
        f"']') FROM numbers({BIG_ROWS})",
        "INSERT INTO session_replay_events (team_id, session_id, window_start, part_id, "
        "version, distinct_id, min_first_timestamp, max_last_timestamp, event_count, "
        f"message_count) VALUES (1, {literal(session_id)}, "
        f"fromUnixTimestamp64Milli({start}, 'UTC'), 'p', 1, 'd', "
        f"fromUnixTimestamp64Milli({start}, 'UTC'), "
        f"fromUnixTimestamp64Milli({start} + {BIG_ROWS * 1000 + 1800}, 'UTC'), "
        f"{BIG_ROWS * EVENTS_PER_ROW}, {BIG_ROWS})",
    ]


def test_a_session_far_larger_than_the_bound_streams_from_both_tiers(
    stack: Stack, s3_server: S3Server
) -> None:
    stack.s3_endpoint = s3_server.endpoint
    worker = stack.worker()
    worker.log_path.touch()  # never started: the stack's failure report reads it
    start = int((NOW - timedelta(days=12)).timestamp() * 1000)
    probe(worker, "sql", {"statements": big_session_sql("big", start)})
    ask = {"team_id": 1, "session_id": "big", "keep": False}

    hot = probe(worker, "read", ask)
    assert hot["count"] == BIG_ROWS * EVENTS_PER_ROW and hot["ascending"]
    assert hot["bytes"] > 5 * PEAK_BOUND
    assert hot["peak"] < PEAK_BOUND, hot["peak"]

    assert "archived 1 session(s)" in spill(worker)
    assert hot_chunks(worker, "big") == []
    cold = probe(worker, "read", ask)
    assert (cold["count"], cold["sha256"]) == (hot["count"], hot["sha256"])
    assert cold["peak"] < PEAK_BOUND, cold["peak"]

    late = [{"type": 3, "timestamp": start + 500 * 1000 + 1, "data": {"late": 1}}]
    probe(worker, "sql", {"statements": [insert_row("big", "late", late)]})
    both = probe(worker, "read", ask)
    assert both["count"] == hot["count"] + 1 and both["ascending"]
    assert both["peak"] < PEAK_BOUND, both["peak"]


# --- 5. windowed and time-bounded reads (chDB and moto's S3 in this process) --------------

START = int((NOW - timedelta(days=10)).timestamp() * 1000)
Pair = tuple[str, dict[str, Any]]


def window_batches(start: int) -> list[tuple[str, str, str]]:
    """(chunk_id, window_id, events JSON) of a session in three windows whose batches
    overlap in time, with equal timestamps across windows, one batch written over many
    lines (raw LFs inside its events)."""
    c1 = [(4, start), (2, start + 1), (3, start + 30)]
    c2 = [(4, start + 10), (2, start + 11), (3, start + 30), (3, start + 50)]
    c3 = [(3, start + 40), (3, start + 60)]
    c4 = [(4, start + 45), (2, start + 46)]
    made = []
    for chunk_id, window_id, kinds, indent in [
        ("c1", "w-a", c1, None),
        ("c2", "w-b", c2, None),
        ("c3", "w-a", c3, 1),
        ("c4", 'w-"c"', c4, None),
    ]:
        events = [
            {"type": t, "timestamp": ts, "data": {"chunk": chunk_id, "n": n}}
            for n, (t, ts) in enumerate(kinds)
        ]
        made.append((chunk_id, window_id, json.dumps(events, indent=indent)))
    return made


def in_order(batches: list[tuple[str, str, str]]) -> list[Pair]:
    """(window, event) of the batches in archive order: timestamp, then the batch's first
    timestamp and chunk_id, then position."""
    keyed = []
    for chunk_id, window_id, text in batches:
        events = json.loads(text)
        first = min(e["timestamp"] for e in events)
        for index, event in enumerate(events):
            keyed.append(((event["timestamp"], first, chunk_id, index), (window_id, event)))
    return [pair for _, pair in sorted(keyed, key=lambda k: k[0])]


@dataclass
class Tiers:
    """A chDB database and moto's S3, opened in this process, and what read them."""

    client: Any
    store: ObjectStore
    fetched: list[str]  # chunk_ids of the raw rows the reads fetched

    def run(self, statement: Query) -> tuple[list[str], list[tuple[Any, ...]]]:
        names, rows = fetch(self.client, statement)
        if "after_chunk" in statement.parameters:  # a page of raw rows (hot_page)
            self.fetched.extend(str(row[1]) for row in rows)
        return names, rows

    def insert(self, session_id: str, batches: list[tuple[str, str, str]]) -> None:
        rows = [batch_row(session_id, c, w, text) for c, w, text in batches]
        self.client.insert(SNAPSHOT_TABLE, rows, column_names=list(SNAPSHOT_COLUMNS))

    def read(self, session_id: str, **bounds: Any) -> list[bytes]:
        async def lines() -> list[bytes]:
            return [x async for x in session_lines(self.run, self.store, 1, session_id, **bounds)]

        return asyncio.run(lines())

    def spill(self, session_id: str) -> None:
        """One spill of the session, as the worker's leader runs it."""
        spiller = Spiller(load_settings({}), TeamRegistry.of([]), self.client, self.store)
        moment = datetime.fromtimestamp(START / 1000, UTC)
        candidate = Candidate(1, session_id, "d", moment, moment + timedelta(minutes=1))

        async def archive() -> bool:
            await self.store.ensure_bucket()
            return await spiller.archive(candidate)

        assert asyncio.run(archive())
        _, rows = self.run(queries.hot_row_count(1, session_id, -1))
        assert rows == [(0,)]


@pytest.fixture
def tiers(chdb_url: str, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch) -> Tiers:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", AWS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", AWS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_DEFAULT_REGION", AWS["region_name"])
    store = ObjectStore(f"s3://{BUCKET}/{PREFIX}", s3_server.endpoint)
    return Tiers(connect(chdb_url), store, [])


def assert_bounded_reads(tiers: Tiers, session_id: str, lines: list[bytes]) -> None:
    """From any `after_ms` on, a read is the full read's lines from that time, windowed
    or not; the raw rows fetched are only those that reach it."""
    stamps = [json.loads(line)[1]["timestamp"] for line in lines]
    for cut in sorted({stamps[0] - 1, stamps[0], stamps[len(stamps) // 2], stamps[-1]}):
        want = [line for line, ts in zip(lines, stamps, strict=True) if ts >= cut]
        assert tiers.read(session_id, windowed=True, after_ms=cut) == want, cut
        assert tiers.read(session_id, after_ms=cut) == [parse_line(x)[2] for x in want], cut
    assert tiers.read(session_id, windowed=True, after_ms=stamps[-1] + 1) == []


def test_windowed_lines_are_the_same_from_hot_rows_part_0_and_a_late_part_1(
    tiers: Tiers,
) -> None:
    batches = window_batches(START)
    tiers.insert("windows", batches)
    truth = in_order(batches)
    assert len({w for w, _ in truth}) == 3

    hot = tiers.read("windows", windowed=True)
    assert [tuple(json.loads(line)) for line in hot] == truth
    assert tiers.read("windows") == [parse_line(line)[2] for line in hot]
    assert all(b"\n" not in line and b"\r" not in line for line in hot)
    tiers.fetched.clear()
    assert_bounded_reads(tiers, "windows", hot)
    tiers.fetched.clear()
    tiers.read("windows", windowed=True, after_ms=START + 50)  # c2 and c3 reach it
    assert sorted(tiers.fetched) == ["c2", "c3"]

    tiers.spill("windows")
    assert tiers.read("windows", windowed=True) == hot  # byte for byte, from part 0
    assert tiers.read("windows") == [parse_line(line)[2] for line in hot]
    assert_bounded_reads(tiers, "windows", hot)

    late = [("c9", "w-late", json.dumps([{"type": 3, "timestamp": START + 30, "data": {}}]))]
    tiers.insert("windows", late)
    mixed = tiers.read("windows", windowed=True)
    # part 0 first on equal timestamps, as its source comes first
    whole = sorted([*truth, *in_order(late)], key=lambda pair: pair[1]["timestamp"])
    assert [tuple(json.loads(line)) for line in mixed] == whole
    assert_bounded_reads(tiers, "windows", mixed)

    tiers.spill("windows")
    _, parts = tiers.run(queries.archive_parts(1, "windows"))
    assert [row[0] for row in parts] == [0, 1]
    assert tiers.read("windows", windowed=True) == mixed
    assert_bounded_reads(tiers, "windows", mixed)


def test_an_object_of_the_older_bare_format_reads_with_window_unknown(tiers: Tiers) -> None:
    batches = window_batches(START)
    tiers.insert("older", batches)
    bare = tiers.read("older")
    tiers.spill("older")
    _, parts = tiers.run(queries.archive_parts(1, "older"))
    (key,) = [row[2] for row in parts]
    asyncio.run(tiers.store.upload_lines(key, bare))  # as versions before windows wrote it

    assert tiers.read("older") == bare
    windowed = tiers.read("older", windowed=True)
    assert [tuple(json.loads(line)) for line in windowed] == [("", e) for _, e in in_order(batches)]
    assert_bounded_reads(tiers, "older", windowed)
    tiers.insert("older", [("c9", "w-late", json.dumps([{"type": 3, "timestamp": START + 5}]))])
    windows = [json.loads(line)[0] for line in tiers.read("older", windowed=True)]
    assert windows.count("w-late") == 1 and windows.count("") == len(windowed)
