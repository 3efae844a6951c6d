"""The `gaps` stage without Kafka or ClickHouse: which dead letters are gaps of which
team's session (streams.gaps.gap_of), the row each makes, and that hostile letters make
nothing or a bounded row, never an exception. Letters are made as the DLQ writer makes
them (tests.builders.dead_letter over streams.dlq.dlq_headers); batch identities are
checked against what the worker's own stages make of the same message."""

from __future__ import annotations

import asyncio
import gzip
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest
from hypothesis import event, given
from hypothesis import strategies as st

import metrics
from sinks.clickhouse import player
from sinks.clickhouse.schema import GAPS_COLUMNS, GAPS_TABLE
from sinks.clickhouse.sink import ClickHouseSink
from sinks.ids import is_safe_id
from streams.dlq import REASONS, Rejected
from streams.gaps import Gap, GapsOutbox, GapsStage, gap_of
from streams.items import parse_items
from streams.letters import moment_ms, moment_of
from streams.loop import StageLoop
from streams.models import SourceRef
from streams.output import Letter, Message, Original
from streams.topics import CAPTURE_TOPIC, DLQ_TOPIC, ITEMS_DLQ_TOPIC, ITEMS_TOPIC, SUMMARIZE
from tests import builders
from tests.builders import TS, dead_letter, items_headers
from tests.fuzzing import FUZZ, bytes_mutated, mutated
from tests.pipeline import NOW, REGISTRY, SETTINGS, Event, Record, decoder, reassemble_stage

DECODER = decoder()
STAGE = GapsStage(DECODER)
NOW_MS = NOW * 1000
LOW = NOW_MS - SETTINGS.max_event_age_days * 86_400_000
HIGH = NOW_MS + SETTINGS.max_future_skew_seconds * 1000
YEAR_2099 = int(datetime(2099, 1, 1, tzinfo=UTC).timestamp() * 1000)
CHUNKED: dict[str, Any] = {"topic": DLQ_TOPIC, "source": (CAPTURE_TOPIC, 1, 9)}
BUILDERS_NOW = 1_792_972_800_000  # the builders' `now` and `sent_at`, 2026-10-26T00:00Z


def gap(message: Message) -> Gap | None:
    return gap_of(message, DECODER, NOW)


def items_letter(reason: str = "invalid_events", **kwargs: Any) -> Message:
    return dead_letter(builders.items_value(**kwargs), reason, "validate")


def chunked_letter(reason: str = "invalid_gzip", stage: str = "decode", **kwargs: Any) -> Message:
    return dead_letter(builders.capture(**kwargs), reason, stage, **CHUNKED)


def sample(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


# --- letters that are gaps ------------------------------------------------------------


def test_an_items_letter_is_a_gap_of_its_tokens_team_with_its_uuid_and_timestamp() -> None:
    found = gap(items_letter(uuid="batch-1", items=[{"type": 9}], timestamp=TS + 5))
    assert found == Gap(
        team_id=1,
        session_id="session-1",
        window_id="window-1",
        chunk_id="batch-1",
        timestamp=TS + 5,
        reason="invalid_events",
        stage="validate",
        source_topic=ITEMS_TOPIC,
        source_partition=2,
        source_offset=40,
    )
    assert len(found.values()) == len(GAPS_COLUMNS) and found.values()[4] == TS + 5


def test_the_token_decides_the_team() -> None:
    found = gap(items_letter(token="token-2", uuid="batch-2"))
    assert found is not None and found.team_id == 2


@pytest.mark.parametrize("encoding", ["gzip", "lz4"])
def test_an_encoded_items_value_is_read_through_its_encoding(encoding: str) -> None:
    value, headers = builders.wrapped(builders.items_value(uuid="batch-3"), encoding)
    found = gap(dead_letter(value, "invalid_events", "validate", headers=headers))
    assert found is not None and (found.chunk_id, found.timestamp) == ("batch-3", TS)


def test_without_uuid_or_window_the_gap_has_the_workers_identity_and_window() -> None:
    value = builders.items_value(uuid=None, window_id=None)
    worker = parse_items(value, None, REGISTRY, 1 << 20, 1 << 20).ids
    found = gap(dead_letter(value, "implausible_timestamp", "validate"))
    assert found is not None
    assert (found.chunk_id, found.window_id) == (worker.chunk_id, worker.window_id)
    assert found.window_id == "session-1" and found.chunk_id.startswith("sha256-")


def test_an_unreadable_items_value_is_attributed_from_its_capture_headers() -> None:
    broken = len(b"x" * 50).to_bytes(4, "little") + b"\xff" * 20  # no lz4 block
    headers = [("content-encoding", b"lz4"), *items_headers(uuid="batch-4")]
    found = gap(dead_letter(broken, "invalid_lz4", "decode", headers=headers))
    assert found is not None
    assert (found.team_id, found.session_id, found.window_id) == (1, "session-1", "session-1")
    assert (found.chunk_id, found.timestamp, found.reason) == ("batch-4", TS, "invalid_lz4")


@pytest.mark.parametrize(
    "headers",
    [
        items_headers(uuid=None),  # no identity a later write could match
        items_headers(uuid="batch-5", token="token-9"),
        items_headers(uuid="batch-5", token="token-off"),
        items_headers(uuid="batch-5", session_id="../etc"),
        items_headers(uuid="a b"),
        [],
    ],
)
def test_unreadable_items_without_provable_headers_are_no_gap(
    headers: list[tuple[str, bytes]],
) -> None:
    assert gap(dead_letter(b"\x1f\x8b broken", "invalid_gzip", "decode", headers=headers)) is None


def test_the_pieces_of_an_expired_set_are_one_gap() -> None:
    stage = reassemble_stage()
    pieces = builders.pieces_of(builders.events(30), 3, chunk_id="set-1")
    for offset, piece in enumerate(pieces[:2]):  # the third never comes
        stage.handle(Message("chunks", 0, offset, b"1:session-1", piece), NOW)
    expired = stage.tick(0, NOW + SETTINGS.chunk_ttl_seconds + 1).letters
    assert len(expired) == 2
    letters = [
        dead_letter(letter.original.value, "chunk_expired", "reassemble", **CHUNKED, headers=())
        for letter in expired
    ]
    gaps = {gap(letter) for letter in letters}
    assert len(gaps) == 1
    (found,) = gaps
    assert found is not None and (found.chunk_id, found.reason) == ("set-1", "chunk_expired")
    assert found.timestamp == BUILDERS_NOW


def test_a_chunked_letter_without_window_has_none_as_the_worker_stores() -> None:
    letter = chunked_letter(
        properties={"$window_id": None}, snapshot=builders.snapshot_data(chunk_id="c-1")
    )
    found = gap(letter)
    assert found is not None and (found.window_id, found.chunk_id) == ("", "c-1")


def test_a_chunked_letter_without_team_id_takes_its_tokens_team() -> None:
    found = gap(chunked_letter(token="token-2", team_id=None))
    assert found is not None and found.team_id == 2


# --- letters that are no gap ------------------------------------------------------------


@pytest.mark.parametrize("reason", ["unknown_token", "team_mismatch", "recording_disabled"])
def test_letters_refused_for_their_team_are_never_attributed(reason: str) -> None:
    assert gap(items_letter(reason)) is None
    assert gap(chunked_letter(reason, "authorize")) is None


NOT_PROVABLY_A_BATCH = {
    "items-unknown-token": items_letter(token="token-9"),
    "items-team-off": items_letter(token="token-off"),
    "items-unsafe-session": items_letter(session_id="../../etc"),
    "items-no-session": items_letter(session_id=None),
    "items-unsafe-window": items_letter(window_id="a.b"),
    "items-unsafe-uuid": items_letter(uuid="x" * 300),
    "items-not-a-recording": items_letter(event="$pageview"),
    "chunked-team-mismatch": chunked_letter(team_id=2),  # token-1 is team 1's
    "chunked-unknown-token": chunked_letter(token="token-9"),
    "chunked-unsafe-session": chunked_letter(session_id="s/1"),
    "chunked-empty-chunk-id": chunked_letter(snapshot=builders.snapshot_data(chunk_id="")),
    "chunked-not-a-recording": chunked_letter(event="$pageview"),
    "summarize-letter": dead_letter(builders.items_value(), "invalid_event", SUMMARIZE),
    "another-topic": dead_letter(builders.capture(), "unwritable_row", "sink", topic="x"),
    "tombstone": dead_letter(None, "invalid_json", "parse"),
    "empty": dead_letter(b"", "invalid_json", "parse", **CHUNKED),
    "msgpack-summary-row": dead_letter(b"\x92\x01\x02", "unwritable_row", "sink", **CHUNKED),
    "oversized": dead_letter(
        builders.capture() + b" " * SETTINGS.max_message_bytes, "oversized", "parse", **CHUNKED
    ),
    "no-dlq-headers": Message(ITEMS_DLQ_TOPIC, 0, 0, None, builders.items_value()),
}


@pytest.mark.parametrize("name", sorted(NOT_PROVABLY_A_BATCH))
def test_letters_not_provably_a_teams_batch_are_no_gap(name: str) -> None:
    assert gap(NOT_PROVABLY_A_BATCH[name]) is None


def test_the_dlq_writers_headers_are_the_last_ones_and_must_name_known_values() -> None:
    letter = items_letter(uuid="batch-6")
    forged_first = letter._replace(headers=(("dlq-reason", b"unknown_token"), *letter.headers))
    assert gap(forged_first) is not None  # the writer's own, last, decides
    for name, value in [("dlq-reason", b"made_up"), ("dlq-stage", b"a b"), ("dlq-stage", b"")]:
        bent = letter._replace(headers=(*letter.headers, (name, value)))
        assert gap(bent) is None, name
    junk = {
        "dlq-source-partition": b"-3",
        "dlq-source-offset": b"9" * 30,
        "dlq-source-topic": b"\xff",
    }
    bent = letter._replace(headers=(*letter.headers, *junk.items()))
    found = gap(bent)
    assert found is not None
    assert (found.source_topic, found.source_partition, found.source_offset) == ("", -1, -1)


# --- the moment of a gap ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (TS, TS),
        (float(TS) + 0.5, TS + 0.5),
        (str(TS), TS),
        (f" {TS} ".encode(), TS),
        ("2026-10-26T00:00:00Z", BUILDERS_NOW),
        ("2026-10-26T02:00:00+02:00", BUILDERS_NOW),
        ("2026-10-26T00:00:00", BUILDERS_NOW),  # no zone: UTC
        (msgspec.Raw(b'"2026-10-26T00:00:00.250Z"'), 1_792_972_800_250),
        (msgspec.Raw(b"1792972800000"), BUILDERS_NOW),
        (msgspec.Raw(b"1e400"), None),
        (msgspec.Raw(b"123456789012345678901234567890"), 1.2345678901234568e29),
        (msgspec.Raw(b"[[[[1]]]]"), None),
        (msgspec.Raw(b"true"), None),
        (msgspec.Raw(b"null"), None),
        (True, None),
        (10**400, None),
        ("NaN", None),
        ("-inf", None),
        ("soon", None),
        ("9" * 5000, None),
        (b"\xff\xfe", None),
        (None, None),
        ({"a": 1}, None),
    ],
)
def test_moments_are_read_leniently(value: object, expected: float | None) -> None:
    assert moment_ms(value) == expected


def test_the_first_plausible_moment_wins_else_the_records_clamped() -> None:
    bounds = DECODER.bounds
    assert moment_of([YEAR_2099, "junk", TS], None, bounds, NOW_MS) == TS
    assert moment_of([YEAR_2099], (TS + 7) / 1000, bounds, NOW_MS) == TS + 7
    assert moment_of([0], YEAR_2099 / 1000, bounds, NOW_MS) == HIGH
    assert moment_of([], -1.0, bounds, NOW_MS) == LOW
    assert moment_of([], None, bounds, NOW_MS) == int(NOW_MS)
    assert moment_of([], float("nan"), bounds, NOW_MS) == int(NOW_MS)


def test_an_items_letter_dated_2099_falls_back_to_its_now_its_headers_its_record() -> None:
    found = gap(items_letter(timestamp=YEAR_2099, now="2026-10-26T00:00:01Z"))
    assert found is not None and found.timestamp == BUILDERS_NOW + 1000
    value = builders.items_value(timestamp=YEAR_2099, now="2099-01-01T00:00:00Z")
    headers = items_headers(timestamp=str(YEAR_2099), now=str(TS + 9))
    found = gap(dead_letter(value, headers=headers))
    assert found is not None and found.timestamp == TS + 9
    letter = items_letter(timestamp=None, now=None)._replace(timestamp=TS / 1000 + 3)
    found = gap(letter)
    assert found is not None and found.timestamp == TS + 3000


# --- hostile letters: None or a bounded row, never an exception -------------------------


def check(found: Gap | None) -> None:
    event("gap" if found is not None else "no gap")
    if found is None:
        return
    assert found.team_id in REGISTRY.by_id and REGISTRY.by_id[found.team_id].recording_enabled
    assert is_safe_id(found.session_id) and is_safe_id(found.chunk_id)
    assert found.window_id == "" or is_safe_id(found.window_id)
    assert found.reason in REASONS and found.reason not in ("unknown_token", "team_mismatch")
    assert is_safe_id(found.stage) and found.stage != SUMMARIZE
    assert LOW <= found.timestamp <= HIGH
    assert len(found.source_topic) <= 249
    assert -1 <= found.source_partition < 2**31 and -1 <= found.source_offset < 2**63


def inner(doc: Any) -> str:
    """The inner event as the JSON string a message carries (it cannot hold bad UTF-8)."""
    return msgspec.json.encode(doc).decode("utf-8", "replace")


reasons = st.sampled_from(sorted(REASONS))
stages = st.sampled_from(["parse", "validate", "decode", "reassemble", "sink", SUMMARIZE])


@FUZZ
@given(st.data(), reasons, stages)
def test_bent_items_letters_give_none_or_a_bounded_gap(
    data: st.DataObject, reason: str, stage: str
) -> None:
    body = builders.items_body(uuid="batch-7")
    body["data"] = inner(data.draw(st.just(body["data"]) | mutated(body["data"])))
    value = msgspec.json.encode(data.draw(st.just(body) | mutated(body)))
    encoding = data.draw(st.sampled_from(["plain", "gzip", "lz4"]))
    value, headers = builders.wrapped(value, encoding)
    value = data.draw(st.just(value) | bytes_mutated(value))
    headers += data.draw(st.sampled_from([[], items_headers(uuid="batch-7")]))
    check(gap(dead_letter(value, reason, stage, headers=headers)))


@FUZZ
@given(st.data(), reasons, stages)
def test_bent_chunked_letters_give_none_or_a_bounded_gap(
    data: st.DataObject, reason: str, stage: str
) -> None:
    body = builders.envelope()
    body["data"] = inner(data.draw(st.just(body["data"]) | mutated(body["data"])))
    value = msgspec.json.encode(data.draw(st.just(body) | mutated(body)))
    value = data.draw(st.just(value) | bytes_mutated(value))
    check(gap(dead_letter(value, reason, stage, **CHUNKED)))


@FUZZ
@given(
    st.sampled_from([DLQ_TOPIC, ITEMS_DLQ_TOPIC]),
    st.binary(max_size=300) | st.none(),
    st.lists(
        st.tuples(
            st.sampled_from(["dlq-reason", "dlq-stage", "dlq-source-topic", "token", "uuid",
                             "session_id", "timestamp", "now", "content-encoding"]),
            st.binary(max_size=40) | st.none() | st.sampled_from([b"invalid_lz4", b"token-1",
                                                                  b"decode", b"lz4", b"s-1"]),
        ),
        max_size=12,
    ),
    st.floats(allow_nan=True, allow_infinity=True) | st.none(),
)  # fmt: skip
def test_any_record_on_a_dlq_gives_none_or_a_bounded_gap(
    topic: str, value: bytes | None, headers: list[tuple[str, bytes | None]], at: float | None
) -> None:
    check(gap(Message(topic, 0, 0, None, value, tuple(headers), at)))


def test_a_deep_or_huge_letter_is_no_gap_and_raises_nothing() -> None:
    deep = b'{"token": "token-1", "data": "x", "now": ' + b"[" * 50_000 + b"]" * 50_000 + b"}"
    bomb = gzip.compress(b" " * (SETTINGS.max_decoded_bytes + 10))
    for value in (deep, bomb, b"[" * 300_000):
        assert gap(dead_letter(value, "too_deep", "parse")) is None
        assert gap(dead_letter(value, "too_deep", "parse", **CHUNKED)) is None


# --- the stage, its loop and its outbox -------------------------------------------------


def test_the_stage_writes_a_row_per_gap_and_counts_the_others() -> None:
    before = sample("replay_gaps_recorded_total", reason="invalid_events")
    out = STAGE.handle(items_letter(uuid="batch-8"), NOW)
    (row,) = out.rows
    assert dict(zip(GAPS_COLUMNS, row.values, strict=True))["chunk_id"] == "batch-8"
    assert row.origin[0].source.topic == ITEMS_DLQ_TOPIC and row.origin[0].value is None
    assert 0 < row.nbytes < 1000 and not out.letters
    assert sample("replay_gaps_recorded_total", reason="invalid_events") == before + 1
    unattributed = sample("replay_gaps_unattributed_total", reason="unknown_token")
    assert not STAGE.handle(items_letter("unknown_token"), NOW).rows
    assert sample("replay_gaps_unattributed_total", reason="unknown_token") == unattributed + 1
    other = sample("replay_gaps_unattributed_total", reason="other")
    STAGE.handle(Message(DLQ_TOPIC, 0, 0, None, b"x", (("dlq-reason", b"\xff" * 99),)), NOW)
    assert sample("replay_gaps_unattributed_total", reason="other") == other + 1


class Refusing:
    """Stands in for the DLQ topic: the gaps outbox must never send to one."""

    def get_topic_name(self) -> str:
        raise AssertionError("the gaps outbox named a dead-letter topic")

    async def send(self, **record: Any) -> None:
        raise AssertionError("the gaps outbox dead-lettered a letter")


class Exploding:
    name = "gaps"

    def handle(self, message: Message, now: float) -> Any:
        raise RecursionError("deep")


def test_what_the_gaps_loop_fails_on_is_counted_never_dead_lettered() -> None:
    sink = ClickHouseSink(no_client, GAPS_TABLE, GAPS_COLUMNS, 100, 1 << 20)
    loop = StageLoop(Exploding(), GapsOutbox(sink, Refusing()))
    failed = sample("replay_gaps_failed_total", reason="internal_error")

    async def take() -> None:
        event = Event(b"letter", Record(topic=ITEMS_DLQ_TOPIC))
        afters = await loop.handle([event])  # type: ignore[list-item]
        await loop.out.seal()
        await loop.out.drain()
        assert afters == [] and loop.out.sends == []

    asyncio.run(take())
    assert sample("replay_gaps_failed_total", reason="internal_error") == failed + 1
    unwritable = sample("replay_gaps_failed_total", reason="unwritable_row")
    original = Original(None, None, SourceRef(ITEMS_DLQ_TOPIC, 1, 2))
    letter = Letter(original, Rejected("unwritable_row", "sink", "Code: 53"))
    asyncio.run(loop.out.dead_letter(letter))
    assert sample("replay_gaps_failed_total", reason="unwritable_row") == unwritable + 1


def no_client() -> Any:
    raise AssertionError("the sink wrote: it holds no row")


def test_session_gaps_carries_its_values_as_parameters() -> None:
    query = player.session_gaps(7, "x' OR 1=1 --", 50)
    assert dict(query.parameters) == {"team_id": 7, "session_id": "x' OR 1=1 --", "limit": 50}
    assert "OR 1=1" not in query.sql and "{limit:UInt32}" in query.sql
