"""The fuzz machinery the fuzz properties share (tests/unit/test_fuzz*.py): hypothesis
settings, mutations that bend a valid document at any node (dropped, retyped, nested
thousands of levels deep, numbers at type limits, huge or odd text), its bytes or its
gzip, valid rrweb batches to start from, the Kafka record around a value (keys, null and
forged headers), and the invariants every stage output must satisfy.

Test modules never import one another: what more than one fuzz module needs lives here.
"""

from __future__ import annotations

import gzip
import math
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st

from streams.dlq import REASONS
from streams.items import CV_FIELDS
from streams.loop import STATS_RECORD_BYTES
from streams.models import SourceRef, encode_stats
from streams.output import SOURCE_HEADERS, TICK_HEADER, Message, Output
from tests.builders import TS, cv_event, cv_kinds
from tests.pipeline import SETTINGS

FUZZ = settings(
    # 200 keeps the unit tier fast at a desk; CI (CI set) runs 1000; failures found once
    # are replayed first from hypothesis' example database; FUZZ_EXAMPLES hunts deeper
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "1000" if os.environ.get("CI") else "200")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


# --- mutations of a document (JSON or msgpack builtins) --------------------------------

DROP = object()
DEPTHS = (2, 64, 999, 1001, 3000, 20_000)
HUGE = (1000, 100_001, 350_000, 450_000)
TYPE_SAMPLES: tuple[Any, ...] = ("1", "session-1", 1, 0, -1, 1.5, None, True, [], {}, ["x"])
HUGE_CHARS = ("x", "\u00e9", "\u202e", "\U0001f600", "\x00")


@dataclass(frozen=True)
class Codec:
    """How one layer is written: JSON text, or msgpack as the statistics topic uses."""

    encode: Callable[[Any], bytes]
    nestings: tuple[tuple[bytes, bytes], ...]  # (opener, closer) of one level
    limits: tuple[Any, ...]  # numbers at type limits
    odd: tuple[Any, ...]  # odd strings


JSON = Codec(
    msgspec.json.encode,
    ((b"[", b"]"), (b'{"a":', b"}"), (b'{"data":', b"}")),
    (
        *(0, -1, 2**31 - 1, 2**31, -(2**31) - 1, 2**53 + 1, 2**63 - 1, 2**63, -(2**63)),
        *(-(2**63) - 1, 2**64 - 1, 2**64, 10**30, 1e308, -1e308, 5e-324, -0.0, 0.5),
        *(msgspec.Raw(b"1e400"), msgspec.Raw(b"-1e400"), msgspec.Raw(b"1E+99999")),
        msgspec.Raw(b"123456789012345678901234567890e-30"),
        msgspec.Raw(b"-0.000000000000000000000000000001e-400"),
    ),
    (
        *("", "\x00", "a\x00b", "\u202e\u200f", "\ufeff", "\U0001f600", "../../etc/passwd"),
        *("a" * 201, "a b", "\n", "NaN"),
        msgspec.Raw(rb'"\ud800"'),
        msgspec.Raw(rb'"\udfff\ud800x"'),
        msgspec.Raw(b'"\xff\xfe"'),
        msgspec.Raw(rb'"a\u0000b"'),
    ),
)
MSGPACK = Codec(
    msgspec.msgpack.encode,
    ((b"\x91", b""), (b"\x81\xa1a", b"")),
    (
        *(0, -1, 2**31, 2**63 - 1, 2**63, -(2**63), 2**64 - 1, 1e308, -1e308),
        *(math.inf, -math.inf, math.nan, 5e-324),
    ),
    (
        *("", "\x00", "\u202e", "\U0001f600", "a" * 201),
        msgspec.Raw(b"\xa2\xff\xfe"),  # a str of invalid UTF-8
        msgspec.Raw(b"\xc1"),  # a byte msgpack never uses
        msgspec.Raw(b"\xd9\xff"),  # a str8 that ends early
        msgspec.Raw(b"\xc4\x02ab"),  # bin where str is expected
    ),
)


def paths(doc: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every node of a document, by path (long lists count as leaves)."""
    found = [prefix]
    if isinstance(doc, dict):
        for key, value in doc.items():
            found += paths(value, (*prefix, key))
    elif isinstance(doc, list) and len(doc) <= 50:
        for index, value in enumerate(doc):
            found += paths(value, (*prefix, index))
    return found


def replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    """A copy of doc with the node at path replaced by new (or removed, for DROP)."""
    if not path:
        return None if new is DROP else new
    copy = dict(doc) if isinstance(doc, dict) else list(doc)
    head, rest = path[0], path[1:]
    value = replace(doc[head], rest, new)
    if value is DROP:
        del copy[head]
    else:
        copy[head] = value
    return copy


def get(doc: Any, path: tuple[Any, ...]) -> Any:
    for step in path:
        doc = doc[step]
    return doc


# What to do to a node, weighted by what it holds: numbers go to their limits more
# often, strings to odd or huge ones.
KINDS = ("drop", "retype", "wrap", "many", "deepen", "limit", "epoch", "huge", "odd")
NUMBER_KINDS = (*KINDS, "limit", "limit", "epoch")
TEXT_KINDS = (*KINDS, "odd", "odd", "huge")
MANY = 10_001  # one past the most entries a performance report may hold


def mutation(draw: st.DrawFn, node: Any, codec: Codec) -> Any:
    """One node bent: dropped, retyped, wrapped, multiplied, nested thousands of levels
    deeper, a number at a type limit or an epoch from 1970 to 2262, huge or odd text."""
    number = isinstance(node, int | float) and not isinstance(node, bool)
    kind = draw(st.sampled_from(NUMBER_KINDS if number else TEXT_KINDS))
    if kind == "drop":
        return DROP
    if kind == "retype":
        return draw(st.sampled_from([v for v in TYPE_SAMPLES if type(v) is not type(node)]))
    if kind == "wrap":
        return draw(st.sampled_from([[node], {"v": node}, [node, node]]))
    if kind == "many":  # (of something small: bent documents stay a few MB at most)
        return [draw(st.sampled_from([0, None, "x", {}, []]))] * MANY
    if kind == "deepen":
        return draw(deepened(node, codec))
    if kind == "limit":
        return draw(st.sampled_from(codec.limits))
    if kind == "epoch":
        return draw(st.integers(0, 9_223_372_036_854) | st.floats(0, 9.2e12))
    if kind == "huge":
        return draw(st.sampled_from(HUGE_CHARS)) * draw(st.sampled_from(HUGE))
    return draw(st.sampled_from(codec.odd))


@st.composite
def mutated(draw: st.DrawFn, doc: Any, codec: Codec = JSON, most: int = 3) -> Any:
    """1..most nodes of doc bent (a node anywhere, the document itself included)."""
    for _ in range(draw(st.integers(1, most))):
        path = draw(st.sampled_from(paths(doc)))
        doc = replace(doc, path, mutation(draw, get(doc, path), codec))
    return doc


@st.composite
def deepened(draw: st.DrawFn, doc: Any, codec: Codec = JSON) -> Any:
    """One node of doc nested thousands of levels deeper."""
    path = draw(st.sampled_from(paths(doc)))
    opener, closer = draw(st.sampled_from(codec.nestings))
    depth = draw(st.sampled_from(DEPTHS))
    node = codec.encode(get(doc, path))
    return replace(doc, path, msgspec.Raw(opener * depth + node + closer * depth))


@st.composite
def at_limits(draw: st.DrawFn, doc: Any, codec: Codec = JSON) -> Any:
    """1..3 numbers of doc at a type limit (or an epoch): the document stays well typed,
    so the numbers reach the arithmetic behind the decoder."""
    numbers = [p for p in paths(doc) if type(get(doc, p)) in (int, float)]
    if not numbers:  # (a document bent already may hold none)
        return doc
    for path in draw(st.lists(st.sampled_from(numbers), min_size=1, max_size=3)):
        epochs = st.integers(0, 9_223_372_036_854) | st.floats(0, 9.2e12)
        doc = replace(doc, path, draw(st.sampled_from(codec.limits) | epochs))
    return doc


@st.composite
def bytes_mutated(draw: st.DrawFn, data: bytes, most: int = 3) -> bytes:
    """Truncated, bytes flipped, inserted or deleted anywhere."""
    for _ in range(draw(st.integers(1, most))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete"]))
        if kind == "truncate":
            data = data[:at]
        elif kind == "flip" and at < len(data):
            mask = draw(st.integers(1, 255))
            data = data[:at] + bytes([data[at] ^ mask]) + data[at + 1 :]
        elif kind == "insert":
            extra = draw(st.binary(min_size=1, max_size=8) | st.sampled_from(INSERTS))
            data = data[:at] + extra + data[at:]
        else:
            data = data[:at] + data[at + draw(st.integers(1, 16)) :]
    return data


INSERTS = (
    b"\x00",
    b'"',
    b"\\",
    b"{",
    b"[",
    b"]",
    b"}",
    b",",
    b"\xff",
    b"\xed\xa0\x80",
    b"\x1f\x8b",
)


@st.composite
def text_mutated(draw: st.DrawFn, text: str) -> str:
    """A string bent at byte level (then read back as text, as JSON must carry it)."""
    return draw(bytes_mutated(text.encode())).decode("utf-8", "replace")


# --- rrweb events ----------------------------------------------------------------------


def rrweb_event(kind: str, ts: int, url: str) -> dict[str, Any]:
    """One valid rrweb event of a kind (meta, full, move, click, input, scroll,
    console, custom)."""
    data: dict[str, dict[str, Any]] = {
        "meta": {"type": 4, "data": {"href": url, "width": 1, "height": 1}},
        "full": {"type": 2, "data": {"node": {"id": 1, "childNodes": []}}},
        "move": {"type": 3, "data": {"source": 1, "positions": [{"x": 1, "y": 2, "id": 3}]}},
        "click": {"type": 3, "data": {"source": 2, "type": 2, "id": 5}},
        "input": {"type": 3, "data": {"source": 5, "text": "x", "id": 6}},
        "scroll": {"type": 3, "data": {"source": 3, "id": 1, "x": 0, "y": 9}},
        "console": {
            "type": 6,
            "data": {"plugin": "rrweb/console@1", "payload": {"level": "warn", "payload": []}},
        },
        "custom": {"type": 5, "data": {"tag": "t", "payload": {}}},
    }
    return {"timestamp": ts} | data[kind]


@st.composite
def rrweb_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """A valid rrweb batch of any kinds of events, at most ten seconds after TS."""
    kinds = ["meta", "full", "move", "click", "input", "scroll", "console", "custom"]
    size = draw(st.integers(1, 8))
    return [
        rrweb_event(
            draw(st.sampled_from(kinds)),
            TS + draw(st.integers(0, 10_000)),
            draw(st.sampled_from(["https://example.com/", "https://example.com/b", "x"])),
        )
        for _ in range(size)
    ]


# --- gzip, bent ------------------------------------------------------------------------

BOMB = gzip.compress(b"[" + b" " * 2_000_000 + b"]", mtime=0)  # inflates past the bound
GZIP_KINDS = ("members", "padding", "garbage", "corrupt", "bomb")


@st.composite
def gzip_bent(draw: st.DrawFn, raw: bytes, kind: str | None = None) -> bytes:
    """gzip(raw) bent (by `kind`, else a drawn one): split over two members as proxies
    write, zero padding, trailing garbage, corrupt bytes, or a bomb in its place."""
    kind = kind or draw(st.sampled_from(GZIP_KINDS))
    member = gzip.compress(raw, mtime=0)
    if kind == "members":
        cut = draw(st.integers(0, len(raw)))
        member = gzip.compress(raw[:cut], mtime=0) + gzip.compress(raw[cut:], mtime=0)
    elif kind == "padding":
        member += b"\x00" * draw(st.integers(1, 64))
    elif kind == "garbage":
        member += draw(st.sampled_from([b"x", member[:5], b"\x1f", b"\x1f\x8b\x08"]))
    elif kind == "corrupt":
        member = draw(bytes_mutated(member))
    elif kind == "bomb":
        member = BOMB
    return member


# --- posthog-js's per-event compression (`cv`), bent ---------------------------------

MAX_DECODED = SETTINGS.max_decoded_bytes  # the test stages' bound on inflated bytes


@st.composite
def plain_events(draw: st.DrawFn) -> list[dict[str, Any]]:
    """rrweb events of any kind, then 0..3 of the kinds posthog-js compresses."""
    events = draw(rrweb_events())
    kinds = draw(st.lists(st.integers(0, 2), max_size=3))
    return events + [cv_kinds(TS + 20 * (n + 1))[kind] for n, kind in enumerate(kinds)]


@st.composite
def sent_events(draw: st.DrawFn, plain: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events as posthog-js may send them: each one compressed (`cv`) or not."""
    return [cv_event(e) if draw(st.booleans()) else e for e in plain]


def cv_paths(event: Any) -> list[tuple[str, ...]]:
    """Where an event's compressed fields are (empty unless it carries `cv`)."""
    if not isinstance(event, dict) or "cv" not in event:
        return []
    data = event.get("data")
    if event.get("type") == 2:
        return [("data",)]
    if event.get("type") == 3 and isinstance(data, dict) and data.get("source") in CV_FIELDS:
        return [("data", name) for name in CV_FIELDS[data["source"]] if name in data]
    return []


@st.composite
def bent_field(draw: st.DrawFn, field: Any) -> Any:
    """A compressed field bent: not latin-1, not gzip, gzip bent, gzip of bad, deep or
    huge JSON, or not a string at all."""
    inner = _inflated(field)
    kind = draw(st.sampled_from(["latin", "plain", "gzip", "bad", "deep", "huge", "type"]))
    if kind == "latin":
        return field + draw(st.sampled_from(["\u2713", "\U0001f600", "\u0100"]))
    if kind == "plain":
        return inner.decode("utf-8", "replace")
    if kind == "gzip":
        packed = draw(gzip_bent(inner))
    elif kind == "bad":
        packed = gzip.compress(draw(bytes_mutated(inner)), mtime=0)
    elif kind == "deep":
        depth = draw(st.sampled_from(DEPTHS))
        packed = gzip.compress(b"[" * depth + inner + b"]" * depth, mtime=0)
    elif kind == "huge":  # alone past the budget, or two that add up past it
        size = draw(st.sampled_from([MAX_DECODED // 2 + 1, MAX_DECODED + 1]))
        packed = gzip.compress(b'"' + b"a" * size + b'"', mtime=0)
    else:
        return draw(st.sampled_from([None, 1, [], {}, ["x"], True]))
    return packed.decode("latin-1")


@st.composite
def cv_bent(draw: st.DrawFn, events: list[dict[str, Any]]) -> list[Any]:
    """1..2 compressed events bent in a field, in their `cv`, or in any node."""
    events = [*events, cv_event(cv_kinds(TS + 90)[draw(st.integers(0, 2))])]
    compressed = [n for n, e in enumerate(events) if cv_paths(e)]
    for at in draw(st.lists(st.sampled_from(compressed), min_size=1, max_size=2, unique=True)):
        event = events[at]
        how = draw(st.sampled_from(["field", "field", "version", "node"]))
        if how == "field":
            path = draw(st.sampled_from(cv_paths(event)))
            event = replace(event, path, draw(bent_field(get(event, path))))
        elif how == "version":
            version = draw(st.sampled_from(["2031-01", "", 1, None, "2024-10 ", ["2024-10"]]))
            event = event | {"cv": version}
        else:
            event = draw(mutated(event))
        events[at] = event
    return events


def _inflated(field: Any) -> bytes:
    """The JSON a compressed field holds (what is left of it, once bent already)."""
    text = field.encode("latin-1", "replace") if isinstance(field, str) else b"[]"
    try:
        return gzip.decompress(text)
    except (OSError, EOFError):
        return text


# --- tenants ---------------------------------------------------------------------------


# (team_id, token): valid ones (no team_id is valid too) weigh more; then a disabled
# team, a team_id that does not own the token, an unknown token
VALID_TENANTS: tuple[tuple[int | None, str], ...] = ((1, "token-1"), (2, "token-2"))
VALID_TENANTS += ((None, "token-1"),)
TENANTS = (*VALID_TENANTS, (1, "token-1"), (3, "token-off"), (2, "token-1"), (1, "token-9"))

# --- the Kafka record around a value ---------------------------------------------------

FORGED = (
    ("replay-source-topic", b"someone_elses_topic"),
    ("replay-source-partition", b"7"),
    ("replay-source-offset", b"12345"),
)
HEADER_VALUES = (None, b"", b"1", b"-1", b"\xff\xfe", b"9" * 4000, b"x" * 1000, b" 7 ")


@st.composite
def headers(draw: st.DrawFn) -> tuple[tuple[str, bytes | None], ...]:
    """Nothing, real-looking ones, null values, forged source and tick headers."""
    names = st.sampled_from([*SOURCE_HEADERS, TICK_HEADER, "token", "session_id", "dlq-reason"])
    pairs = draw(st.lists(st.tuples(names, st.sampled_from(HEADER_VALUES)), max_size=4))
    if draw(st.booleans()):
        pairs = [*FORGED, *pairs]
    return tuple(pairs)


@st.composite
def records(draw: st.DrawFn, topic: str, value: bytes | None) -> Message:
    key = draw(st.sampled_from([None, b"", b"1:session-1", b"\xff" * 3, b"k" * 1000]))
    partition = draw(st.sampled_from([0, 1, 3, 2**31 - 1]))
    offset = draw(st.sampled_from([0, 1, 2**31, 2**63 - 1]))
    return Message(topic, partition, offset, key, value, draw(headers()))


# --- what every output must satisfy ----------------------------------------------------


def record_bytes(key: bytes, value: bytes, pairs: Iterable[tuple[str, bytes]]) -> int:
    return len(key) + len(value) + sum(len(name.encode()) + len(data) for name, data in pairs)


def check(out: Output, message: Message, *, columns: int, input_topic: bool, silent: bool) -> None:
    """The invariants of any output; `silent`: this input may produce nothing at all."""
    assert isinstance(out, Output)
    for row in out.rows:
        assert row.origin, "a row without the messages it came from"
        assert len(row.values) == columns
    for letter in out.letters:
        assert letter.rejection.reason in REASONS
        assert letter.rejection.stage
        if input_topic:  # the record itself, whatever its headers claim
            assert letter.original.value in ((message.value,) if message.value else (b"", None))
            assert letter.original.source == SourceRef(
                message.topic, message.partition, message.offset
            )
            assert letter.original.headers == message.headers
    for forward in out.forwards:
        size = record_bytes(forward.key, forward.value, forward.headers)
        assert size <= SETTINGS.max_record_bytes
    for record in encode_stats(out.stats, STATS_RECORD_BYTES):
        assert len(record) <= SETTINGS.max_record_bytes
    assert silent or out.rows or out.forwards or out.letters, "no row, forward or letter"


def handle(stage: Any, message: Message, now: float) -> Output:
    """stage.handle: any exception fails the property."""
    out = stage.handle(message, now)
    event("outcome: " + _outcome(out))
    return out


def _outcome(out: Output) -> str:
    kinds = [*(["row"] if out.rows else []), *(["forward"] if out.forwards else [])]
    kinds += sorted({letter.rejection.reason for letter in out.letters})
    return ", ".join(kinds) or "nothing"
