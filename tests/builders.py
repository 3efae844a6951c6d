"""Builders with overrides: one valid input (a capture message, a performance batch,
a batch's statistics, a sink row) bent into any bad shape; and the hostile SQL the
guard must refuse."""

from __future__ import annotations

import gzip
import time
import uuid
from collections.abc import Iterable
from typing import Any

import msgspec
import pybase64

from replay_ingest.generator.items import cv_compressed, gzip_to_string
from sinks.clickhouse.schema import SNAPSHOT_COLUMNS
from streams.dlq import Rejected, dlq_headers
from streams.models import BatchStats, SourceRef, encode_stats
from streams.output import Message
from streams.stats import summarize_events
from streams.topics import ITEMS_DLQ_TOPIC, ITEMS_TOPIC

TS = 1_793_000_000_000  # 2026-10-26, well inside the valid timestamp range


def events(count: int = 3, full: bool = True, start: int = TS) -> list[dict[str, Any]]:
    """A small rrweb batch: meta, optionally a full snapshot, then mouse moves."""
    batch: list[dict[str, Any]] = [
        {"type": 4, "timestamp": start, "data": {"href": "https://example.com/"}}
    ]
    if full:
        batch.append({"type": 2, "timestamp": start + 1, "data": {"node": {"id": 1}}})
    while len(batch) < count:
        batch.append(
            {"type": 3, "timestamp": start + len(batch) * 10, "data": {"source": 1, "x": 1}}
        )
    return batch


def encode_events(batch: list[dict[str, Any]]) -> str:
    return pybase64.b64encode(gzip.compress(msgspec.json.encode(batch))).decode()


def snapshot_data(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "chunk_id": str(uuid.uuid4()),
        "chunk_index": 0,
        "chunk_count": 1,
        "data": encode_events(events()),
        "compression": "gzip-base64",
        "has_full_snapshot": True,
    }
    return data | overrides


def envelope(
    *,
    token: str = "token-1",
    team_id: int | None = 1,
    session_id: str = "session-1",
    window_id: str = "window-1",
    distinct_id: str = "user-1",
    event: str = "$snapshot",
    properties: dict[str, Any] | None = None,
    snapshot: dict[str, Any] | None = None,
    drop: tuple[str, ...] = (),
    **envelope_overrides: Any,
) -> dict[str, Any]:
    """A capture message as a dict, its `data` not yet a JSON string (DESIGN input
    shape); `drop` removes envelope keys, `properties` overrides or adds properties."""
    props: dict[str, Any] = {
        "distinct_id": distinct_id,
        "$session_id": session_id,
        "$window_id": window_id,
        "snapshot_data": snapshot if snapshot is not None else snapshot_data(),
    }
    props |= properties or {}
    body: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "distinct_id": distinct_id,
        "ip": "127.0.0.1",
        "site_url": "https://example.com",
        "team_id": team_id,
        "now": "2026-10-26T00:00:00+00:00",
        "sent_at": "2026-10-26T00:00:00+00:00",
        "token": token,
        "data": {"event": event, "properties": props},
    }
    if team_id is None:
        del body["team_id"]
    body |= envelope_overrides
    for key in drop:
        body.pop(key, None)
    return body


def capture(**kwargs: Any) -> bytes:
    """A capture message (see `envelope`), with its `data` encoded as the JSON string."""
    body = envelope(**kwargs)
    if isinstance(body.get("data"), dict):
        body["data"] = msgspec.json.encode(body["data"]).decode()
    return msgspec.json.encode(body)


def pieces_of(
    batch: list[dict[str, Any]], parts: int, chunk_id: str | None = None, **capture_kwargs: Any
) -> list[bytes]:
    """One batch cut into `parts` capture messages sharing a chunk_id (a new one unless
    given)."""
    text = encode_events(batch)
    size = -(-len(text) // parts)
    chunk_id = chunk_id or str(uuid.uuid4())
    return [
        capture(
            snapshot=snapshot_data(
                chunk_id=chunk_id,
                chunk_index=i,
                chunk_count=parts,
                data=text[i * size : (i + 1) * size],
            ),
            **capture_kwargs,
        )
        for i in range(parts)
    ]


def performance_entries() -> list[dict[str, Any]]:
    """A resource entry with its timings, a paint and a long task (whose extra fields are
    not columns), as the browser serialises them."""
    return [
        {
            "name": "https://example.com/api/x",
            "entryType": "resource",
            "startTime": 100.25,
            "duration": 50.5,
            "initiatorType": "fetch",
            "responseEnd": 150.75,
            "transferSize": 1300,
            "encodedBodySize": 1000,
            "decodedBodySize": 4000,
            "responseStatus": 404,
            "nextHopProtocol": "h2",
            "serverTiming": [],
        },
        {"name": "first-paint", "entryType": "paint", "startTime": 30.0, "duration": 0},
        {
            "name": "x",
            "entryType": "longtask",
            "startTime": 7,
            "duration": 60,
            "attribution": [{"name": "unknown"}],
        },
    ]


def performance_body(
    *, entries: list[Any] | None = None, drop: tuple[str, ...] = (), **overrides: Any
) -> dict[str, Any]:
    """A `performance_events_batches` message as a dict (DESIGN input shape), dated TS."""
    report: dict[str, Any] = {
        "team_id": 1,
        "token": "token-1",
        "distinct_id": "user-1",
        "session_id": "session-1",
        "window_id": "window-1",
        "pageview_id": "pageview-1",
        "current_url": "https://example.com/",
        "time_origin": TS + 0.5,
        "entries": performance_entries() if entries is None else entries,
    }
    report |= overrides
    for key in drop:
        report.pop(key, None)
    return report


def performance_message(**overrides: Any) -> bytes:
    return msgspec.json.encode(performance_body(**overrides))


def performance_report(time_origin: float | None = None, **overrides: Any) -> bytes:
    """A performance report message whose page started at `time_origin` (epoch ms), by
    default a day ago: inside performance_events' TTL, which ClickHouse applies to
    what is written."""
    if time_origin is None:
        time_origin = round((time.time() - 86_400) * 1000) + 0.5  # fractional, as sent
    return performance_message(time_origin=time_origin, **overrides)


def batch_stats(
    events: list[dict[str, Any]] | None = None,
    window_id: str = "window-1",
    figures_overrides: dict[str, Any] | None = None,
    **overrides: Any,
) -> BatchStats:
    """One batch's statistics as decode_batch makes them from `events` (default: a meta,
    a full snapshot and a mouse move); overrides are BatchStats fields, and
    SessionFigures fields under `figures_overrides`."""
    if events is None:
        events = [
            {"type": 4, "timestamp": TS, "data": {"href": "https://example.com/"}},
            {"type": 2, "timestamp": TS + 10, "data": {"node": {}}},
            {"type": 3, "timestamp": TS + 20, "data": {"source": 1, "positions": []}},
        ]
    figures = msgspec.structs.replace(
        summarize_events(msgspec.json.encode(events), window_id),
        distinct_id="user-1",
        size=100,
        message_count=1,
        retention_days=7,
    )
    figures = msgspec.structs.replace(figures, **(figures_overrides or {}))
    stats = BatchStats(
        team_id=1, session_id="session-1", chunk_id=str(uuid.uuid4()), figures=figures
    )
    return msgspec.structs.replace(stats, **overrides)


def stats_record(batches: list[BatchStats]) -> bytes:
    """One record of the statistics topic, as the loop sends it (streams.models)."""
    (record,) = encode_stats(batches, 1 << 30)
    return record


def snapshot_row(chunk_id: str, size: int = 10, **values: Any) -> tuple[Any, ...]:
    """A session_recording_events row as the sink takes it; `values` override columns."""
    defaults = (1, "d", "s", "w", chunk_id, 1, TS, TS + 5, True, 2, size, "[]")
    base = dict(zip(SNAPSHOT_COLUMNS, defaults, strict=True))
    return tuple((base | values)[column] for column in SNAPSHOT_COLUMNS)


# Statements the SQL guard must refuse before they run, whoever sends them (the guard
# in-process, /api/sql over HTTP). Placeholders: {secret} a file holding a canary,
# {teams} the team registry, {out} a path nothing may create.
SQL_PROBES = [
    # the reported leaks
    "DESCRIBE file('{secret}', 'TSVWithNames')",
    "DESCRIBE file('{teams}', 'TSKV')",
    "DESC TABLE file('{secret}')",
    "SELECT file('{secret}')",
    "SELECT * FROM file('{secret}', 'TSV')",
    # spelling: case, backticks, comments between name and parenthesis, line comments
    "select * from `file`('{secret}')",
    "SELECT * FROM file /* x */ ('{secret}')",
    "SELECT * FROM file -- x\n('{secret}')",
    "SELECT FILE('{secret}')",
    "SELECT \"file\"('{secret}')",
    "SELECT `a\nFunction numbers`(), file('{secret}')",
    # nested: subqueries, CTEs, joins, set operations, IN
    "SELECT * FROM (SELECT * FROM (SELECT * FROM file('{secret}')))",
    "WITH s AS (SELECT * FROM file('{secret}')) SELECT * FROM s",
    "WITH (SELECT file('{secret}')) AS s SELECT s",
    "SELECT * FROM numbers(1) AS n JOIN file('{secret}') AS f ON 1",
    "SELECT 1 UNION ALL SELECT c1 FROM file('{secret}')",
    "SELECT 1 WHERE 1 IN (SELECT 1 FROM file('{secret}'))",
    "SELECT 1 WHERE 'x' IN file('{secret}')",
    # every statement kind that reads
    "EXPLAIN SELECT * FROM file('{secret}')",
    "EXPLAIN AST SELECT * FROM file('{secret}')",
    "EXPLAIN SYNTAX SELECT file('{secret}')",
    "SHOW CREATE TABLE `{secret}`",
    # chDB's default database reads files named like tables
    "SELECT * FROM `{secret}`",
    "DESCRIBE TABLE `{teams}`",
    "SELECT * FROM `teams.json`",
    "SELECT 1 WHERE 'x' IN `{secret}`",
    # other ways out
    "SELECT * FROM url('http://127.0.0.1:9/x', 'TSV')",
    "DESCRIBE url('http://127.0.0.1:9/x', 'TSV')",
    "SELECT * FROM s3('http://127.0.0.1:9/b/k')",
    "SELECT * FROM remote('127.0.0.1', system.one)",
    "SELECT * FROM remoteSecure('127.0.0.1', system.one)",
    "SELECT * FROM cluster('default', system.one)",
    "SELECT * FROM s3Cluster('default', 'http://127.0.0.1:9/b/k')",
    "SELECT * FROM hdfs('hdfs://127.0.0.1:9/x')",
    "SELECT * FROM mysql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM postgresql('127.0.0.1:9', 'd', 't', 'u', 'p')",
    "SELECT * FROM executable('cat {secret}', TSV, 'x String')",
    "SELECT * FROM input('x String')",
    "SELECT * FROM jdbc('x', 'y')",
    "SELECT * FROM odbc('x', 'y')",
    "SELECT * FROM sqlite('{secret}', 't')",
    "SELECT * FROM azureBlobStorage('http://127.0.0.1:9', 'c', 'b')",
    "SELECT * FROM iceberg('http://127.0.0.1:9/x')",
    "SELECT * FROM deltaLake('http://127.0.0.1:9/x')",
    "SELECT * FROM mongodb('127.0.0.1:9', 'd', 'c', 'u', 'p', 'x String')",
    "SELECT * FROM redis('127.0.0.1:9', 'k', 'k String')",
    "SELECT * FROM merge('default', '.*')",
    "SELECT aiGenerate('hello')",
    # writes, settings, files, several statements
    "SELECT 1 INTO OUTFILE '{out}'",
    "EXPLAIN SELECT 1 INTO OUTFILE '{out}'",
    "SELECT 1 SETTINGS readonly = 0",
    "SELECT * FROM file('{secret}') SETTINGS readonly = 2",
    "SELECT count() FROM numbers(10) SETTINGS max_result_rows = 0",
    "SELECT 1; SELECT * FROM file('{secret}')",
    "SELECT 1; DROP TABLE session_recording_events",
    "INSERT INTO session_recording_events (chunk_id) VALUES ('x')",
    "INSERT INTO FUNCTION file('{out}') SELECT 1",
    "ALTER TABLE session_recording_events DELETE WHERE 1",
    "DROP TABLE session_recording_events",
    "TRUNCATE TABLE session_recording_events",
    "SET readonly = 0",
    "EXISTS TABLE `{secret}`",
    "BACKUP TABLE session_recording_events TO File('{out}')",
    "KILL QUERY WHERE 1",
    "USE system",
]


# --- `$snapshot_items` messages (topic session_recording_snapshot_item_events) -----------


def items_body(
    *,
    token: str = "token-1",
    session_id: str | None = "session-1",
    window_id: str | None = "window-1",
    distinct_id: str | None = "user-1",
    event: str = "$snapshot_items",
    items: list[Any] | None = None,
    **envelope_overrides: Any,
) -> dict[str, Any]:
    """An items message as a dict, its `data` not yet a JSON string (DESIGN input shape);
    a None id is left out; envelope keys (`uuid`...) are overridden, None drops them."""
    props: dict[str, Any] = {
        "$session_id": session_id,
        "$window_id": window_id,
        "$snapshot_source": "web",
        "$snapshot_items": events() if items is None else items,
        "$lib": "web",
        "distinct_id": distinct_id,
    }
    body: dict[str, Any] = {
        "uuid": str(uuid.uuid4()),
        "distinct_id": distinct_id,
        "ip": "127.0.0.1",
        "data": {"event": event, "properties": {k: v for k, v in props.items() if v is not None}},
        "now": "2026-10-26T00:00:00+00:00",
        "sent_at": "2026-10-26T00:00:00+00:00",
        "token": token,
        "event": "$snapshot_items",
        "timestamp": TS,
    }
    body |= envelope_overrides
    return {k: v for k, v in body.items() if v is not None}


def items_value(**kwargs: Any) -> bytes:
    """An items message's plain JSON value (see `items_body`)."""
    body = items_body(**kwargs)
    if isinstance(body.get("data"), dict):
        body["data"] = msgspec.json.encode(body["data"]).decode()
    return msgspec.json.encode(body)


def wrapped(value: bytes, encoding: str) -> tuple[bytes, list[tuple[str, bytes]]]:
    """`value` as PostHog's capture may write it, with the headers that says so: plain,
    gzip, or lz4 (a 4-byte little-endian length, then one block)."""
    import lz4.block

    if encoding == "gzip":
        return gzip.compress(value), []
    if encoding == "lz4":
        block = lz4.block.compress(value, store_size=False)
        return len(value).to_bytes(4, "little") + block, [("content-encoding", b"lz4")]
    assert encoding == "plain", encoding
    return value, []


# posthog-js's per-event compression, as the generator writes it: an event
# (`cv` last, so the stored event minus `cv` is the original) and a single field
cv_event = cv_compressed
cv_string = gzip_to_string


def cv_kinds(start: int = TS) -> list[dict[str, Any]]:
    """One event of each kind posthog-js compresses: a full snapshot, a mutation, a
    stylesheet rule with only `adds`."""
    node = {"type": 0, "childNodes": [{"type": 3, "textContent": "héllo ✓", "id": 2}], "id": 1}
    mutation = {
        "source": 0,
        "texts": [{"id": 2, "value": "x"}],
        "attributes": [{"id": 3, "attributes": {"class": "a"}}],
        "removes": [{"parentId": 1, "id": 4}],
        "adds": [{"parentId": 1, "nextId": None, "node": {"type": 3, "textContent": "t"}}],
    }
    return [
        {
            "type": 2,
            "data": {"node": node, "initialOffset": {"left": 0, "top": 0}},
            "timestamp": start,
        },
        {"type": 3, "data": mutation, "timestamp": start + 5},
        {
            "type": 3,
            "data": {"source": 8, "id": 7, "adds": [{"rule": "a{}"}]},
            "timestamp": start + 9,
        },
    ]


# --- recordings of a page, for the player page --------------------------------------------

BODY_ID = 5  # the <body> of `page_events`' document


def page_events(
    text: str,
    *,
    start: int | None = None,
    href: str = "https://example.com/",
    hostile: bool = False,
) -> list[dict[str, Any]]:
    """A window's recording of a page showing `text`: meta, a full snapshot, then mouse
    moves over 4 s. `hostile` puts script in the page (an <img onerror>, a <script>) that
    a player must never run."""
    at = int(time.time() * 1000) - 10_000 if start is None else start
    children: list[dict[str, Any]] = [
        {
            "type": 2,
            "tagName": "h1",
            "attributes": {},
            "childNodes": [{"type": 3, "textContent": text, "id": 7}],
            "id": 6,
        },
    ]
    if hostile:
        children += [
            {
                "type": 2,
                "tagName": "img",
                "attributes": {"src": "x", "onerror": "parent.__pwned_img = 1"},
                "childNodes": [],
                "id": 8,
            },
            {
                "type": 2,
                "tagName": "script",
                "attributes": {},
                "childNodes": [{"type": 3, "textContent": "parent.__pwned_script = 1", "id": 10}],
                "id": 9,
            },
        ]
    document = {
        "type": 0,
        "id": 1,
        "childNodes": [
            {"type": 1, "name": "html", "publicId": "", "systemId": "", "id": 2},
            {
                "type": 2,
                "tagName": "html",
                "attributes": {},
                "id": 3,
                "childNodes": [
                    {"type": 2, "tagName": "head", "attributes": {}, "childNodes": [], "id": 4},
                    {
                        "type": 2,
                        "tagName": "body",
                        "attributes": {},
                        "childNodes": children,
                        "id": BODY_ID,
                    },
                ],
            },
        ],
    }
    events: list[dict[str, Any]] = [
        {"type": 4, "timestamp": at, "data": {"href": href, "width": 1000, "height": 700}},
        {
            "type": 2,
            "timestamp": at + 1,
            "data": {"node": document, "initialOffset": {"left": 0, "top": 0}},
        },
    ]
    for step in range(1, 5):
        events.append(
            {
                "type": 3,
                "timestamp": at + step * 1000,
                "data": {
                    "source": 1,
                    "positions": [{"x": 10 * step, "y": 10, "id": BODY_ID, "timeOffset": 0}],
                },
            }
        )
    return events


def text_added(text: str, at: int, node_id: int) -> dict[str, Any]:
    """A mutation adding a text node `text` (id `node_id`) to the page's <body>."""
    node = {"type": 3, "textContent": text, "id": node_id}
    adds = [{"parentId": BODY_ID, "nextId": None, "node": node}]
    data = {"source": 0, "texts": [], "attributes": [], "removes": [], "adds": adds}
    return {"type": 3, "timestamp": at, "data": data}


def console_error(message: str, at: int) -> dict[str, Any]:
    """What rrweb's console plugin records for ``console.error(message)``."""
    payload = {"level": "error", "trace": [], "payload": [msgspec.json.encode(message).decode()]}
    return {"type": 6, "timestamp": at, "data": {"plugin": "rrweb/console@1", "payload": payload}}


# --- dead letters, as the `gaps` stage reads them -------------------------------------


def dead_letter(
    value: bytes | None,
    reason: str = "invalid_events",
    stage: str = "validate",
    *,
    topic: str = ITEMS_DLQ_TOPIC,
    source: tuple[str, int, int] = (ITEMS_TOPIC, 2, 40),
    headers: Iterable[tuple[str, bytes | None]] = (),
    timestamp: float | None = None,
) -> Message:
    """A letter as the DLQ writer makes it (streams.dlq.dlq_headers: the original headers
    minus our own, then the dlq-* ones), read back from `topic`."""
    pairs = dlq_headers(Rejected(reason, stage, "an error"), SourceRef(*source), headers)
    return Message(topic, 0, 7, None, value, tuple(pairs), timestamp)


def items_headers(
    *,
    token: str | None = "token-1",
    session_id: str | None = "session-1",
    uuid: str | None = None,
    timestamp: str | None = str(TS),
    now: str | None = "2026-10-26T00:00:00+00:00",
) -> list[tuple[str, bytes]]:
    """The headers PostHog's capture puts on an items message (None ones left out)."""
    values = {"token": token, "session_id": session_id, "uuid": uuid}
    values |= {"timestamp": timestamp, "now": now}
    return [(name, value.encode()) for name, value in values.items() if value is not None]


def batch_row(session_id: str, chunk_id: str, window_id: str, text: str) -> tuple[Any, ...]:
    """A raw row of a batch whose events' JSON array is `text`, kept byte for byte as the
    sink stores it (whitespace and newlines included), its timestamps taken from it."""
    stamps = [event["timestamp"] for event in msgspec.json.decode(text)]
    return snapshot_row(
        chunk_id,
        len(text),
        session_id=session_id,
        window_id=window_id,
        first_timestamp=min(stamps),
        last_timestamp=max(stamps),
        event_count=len(stamps),
        has_full_snapshot=False,
        snapshot_data=text,
    )


# --- erasure tombstones (streams.tombstones) ----------------------------------------------
# (imported here, with the builders that use it: additions to this module go at its end)
from streams.tombstones import TombstoneHolder, TombstoneRow  # noqa: E402


def erasure_row(
    team_id: int = 1,
    kind: str = "session",
    sessions: tuple[str, ...] = (),
    distinct_id: str = "",
    before_ms: int = 0,
) -> TombstoneRow:
    """One row as sinks.clickhouse.erasure.tombstones reads it."""
    return (team_id, kind, list(sessions), distinct_id, before_ms)


def tombstone_holder(*rows: TombstoneRow) -> TombstoneHolder:
    """A holder loaded with `rows` (reloading it reads them again)."""
    holder = TombstoneHolder(lambda: rows)
    assert holder.refresh()
    return holder
