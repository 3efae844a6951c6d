"""Each stage of the pipeline on its own, without Kafka: a good message and what it
becomes (a row, a forward, statistics), a bad one and its dead letter (reason, stage,
the original bytes, the true source), and what a tick does. The stages over plain dicts
come from tests/pipeline.py, the messages from tests/builders.py; the same stages under
thousands of bent inputs are in test_fuzz.py."""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from config.settings import Settings
from metrics import REGISTRY
from sinks.clickhouse.schema import PERFORMANCE_COLUMNS, SNAPSHOT_COLUMNS, SUMMARY_COLUMNS
from sinks.clickhouse.summary import ClickSpan
from streams.decoder import Decoder
from streams.models import SourceRef, decode_stats
from streams.output import TICK_HEADER, Message, Original, Output, source_headers
from streams.stages import (
    RECORD_HEADROOM,
    IngestStage,
    ItemsStage,
    PerformanceStage,
    ReassembleStage,
)
from streams.tombstones import TombstoneHolder, TombstoneRow
from streams.topics import CAPTURE_TOPIC, ITEMS_TOPIC, PERFORMANCE_TOPIC
from tests import builders
from tests.pipeline import (
    CHUNKS,
    NOW,
    SETTINGS,
    STATS,
    ingest_stage,
    performance_stage,
    reassemble_stage,
    run_afters,
    settings,
    summarize_stage,
    tick,
)
from tests.pipeline import REGISTRY as PIPELINE_REGISTRY

YEARS_AGO = builders.TS - 2 * 365 * 86_400_000  # past REPLAY_MAX_EVENT_AGE_DAYS
FORGED = (
    ("replay-source-topic", b"secret-internal-topic"),
    ("replay-source-partition", b"9"),
    ("replay-source-offset", b"123"),
)


def snapshot(out: Output) -> dict[str, Any]:
    (row,) = out.rows
    return dict(zip(SNAPSHOT_COLUMNS, row.values, strict=True))


def letter_of(out: Output, reason: str, stage: str) -> Original:
    """The one dead letter of `out`, checked to say `reason` at `stage`."""
    assert not (out.rows or out.forwards or out.stats), "a refused message produced more"
    (letter,) = out.letters
    assert (letter.rejection.reason, letter.rejection.stage) == (reason, stage)
    assert letter.rejection.error
    return letter.original


# --- IngestStage (input: session_recording_events) ----------------------------------------


def test_ingest_decodes_a_single_piece_batch_into_its_row_and_statistics() -> None:
    batch = builders.events(5)
    raw = builders.capture(
        session_id="s-1",
        snapshot=builders.snapshot_data(chunk_id="c-1", data=builders.encode_events(batch)),
    )
    message = Message(CAPTURE_TOPIC, 3, 41, b"key", raw, (("token", b"x"),))
    out = ingest_stage().handle(message, NOW)
    row = snapshot(out)
    assert (row["team_id"], row["session_id"], row["chunk_id"], row["chunk_count"]) == (
        1,
        "s-1",
        "c-1",
        1,
    )
    assert (row["first_timestamp"], row["last_timestamp"]) == (
        batch[0]["timestamp"],
        batch[-1]["timestamp"],
    )
    assert row["event_count"] == 5 and row["has_full_snapshot"] is True
    assert msgspec.json.decode(row["snapshot_data"]) == batch
    origin = Original(raw, b"key", SourceRef(CAPTURE_TOPIC, 3, 41), (("token", b"x"),))
    assert out.rows[0].origin == (origin,)  # what an unwritable row's letter would carry
    (stats,) = out.stats
    assert (stats.team_id, stats.session_id, stats.chunk_id) == (1, "s-1", "c-1")
    assert stats.figures.event_count == 5 and stats.figures.message_count == 1
    assert out.newest_ms == batch[-1]["timestamp"]
    assert not (out.forwards or out.letters or out.after), "ingest holds no state"


def test_ingest_forwards_a_piece_of_a_larger_set_untouched_keyed_by_session() -> None:
    first, _ = builders.pieces_of(
        builders.events(20), 2, session_id="s-2", token="token-2", team_id=2
    )
    out = ingest_stage().handle(Message(CAPTURE_TOPIC, 1, 7, None, first), NOW)
    (forward,) = out.forwards
    assert forward.key == b"2:s-2"  # team and session: every piece meets on one partition
    assert forward.value == first
    assert forward.headers == source_headers(SourceRef(CAPTURE_TOPIC, 1, 7))
    assert not (out.rows or out.stats or out.letters)


@pytest.mark.parametrize(
    ("raw", "reason", "stage"),
    [
        (b'{"token": "token-1", "data": ', "invalid_json", "parse"),
        (None, "invalid_json", "parse"),  # a tombstone
        (builders.capture(token="who-knows"), "unknown_token", "authorize"),
        (builders.capture(token="token-1", team_id=2), "team_mismatch", "authorize"),
        (builders.capture(token="token-off", team_id=3), "recording_disabled", "authorize"),
        (builders.capture(session_id="../etc"), "invalid_id", "validate"),
        (
            builders.capture(snapshot=builders.snapshot_data(data="***not base64***")),
            "invalid_base64",
            "decode",
        ),
        (
            builders.capture(
                snapshot=builders.snapshot_data(
                    data=builders.encode_events(builders.events(3, start=YEARS_AGO))
                )
            ),
            "implausible_timestamp",
            "validate",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "msg",
)
def test_ingest_dead_letters_a_bad_message_from_where_it_came(
    raw: bytes | None, reason: str, stage: str
) -> None:
    """Whatever `replay-source-*` headers a producer forged: on an input topic the
    message's own topic, partition and offset are its source."""
    out = ingest_stage().handle(Message(CAPTURE_TOPIC, 2, 99, b"k", raw, FORGED), NOW)
    original = letter_of(out, reason, stage)
    assert original == Original(raw, b"k", SourceRef(CAPTURE_TOPIC, 2, 99), FORGED)


def test_ingest_refuses_a_piece_too_large_to_forward() -> None:
    limit = SETTINGS.max_record_bytes - RECORD_HEADROOM
    piece = builders.snapshot_data(chunk_count=2, data="A" * limit)
    raw = builders.capture(snapshot=piece)
    assert limit < len(raw) <= SETTINGS.max_message_bytes
    original = letter_of(
        ingest_stage().handle(Message(CAPTURE_TOPIC, 0, 0, None, raw), NOW), "oversized", "parse"
    )
    assert original.value == raw


def test_a_tick_header_on_the_input_topic_means_nothing() -> None:
    raw = builders.capture()
    out = ingest_stage().handle(
        Message(CAPTURE_TOPIC, 0, 0, None, raw, ((TICK_HEADER, b"1"),)), NOW
    )
    assert snapshot(out)["event_count"] == 3 and len(out.stats) == 1


# --- ReassembleStage (internal: the pieces ingest forwarded) --------------------------------


def forwarded(pieces: list[bytes], partition: int = 0) -> list[Message]:
    """The pieces as ingest forwards them (capture offsets 10, 11, ...), as the
    reassemble stage reads them from its internal topic."""
    messages = []
    for offset, piece in enumerate(pieces, start=10):
        (forward,) = (
            ingest_stage().handle(Message(CAPTURE_TOPIC, 1, offset, None, piece), NOW).forwards
        )
        messages.append(
            Message(
                CHUNKS, partition, offset + 500, forward.key, forward.value, tuple(forward.headers)
            )
        )
    return messages


def test_reassemble_holds_pieces_until_the_set_is_complete_then_makes_its_row() -> None:
    batch = builders.events(30)
    pieces = builders.pieces_of(batch, 3)
    stage = reassemble_stage()
    last, *rest = reversed(forwarded(pieces))  # in any order
    for message in rest:
        assert stage.handle(message, NOW) == Output(), "a held piece produces nothing yet"
    out = stage.handle(last, NOW + 1)
    row = snapshot(out)
    assert (row["chunk_count"], row["event_count"]) == (3, 30)
    assert msgspec.json.decode(row["snapshot_data"]) == batch
    assert sorted(o.source.offset for o in out.rows[0].origin) == [10, 11, 12]  # the capture's
    assert all(o.source.topic == CAPTURE_TOPIC for o in out.rows[0].origin)
    (stats,) = out.stats
    assert stats.figures.message_count == 3 and stats.figures.event_count == 30
    assert stage.handle(last, NOW + 2) == Output(), "a piece of a set being written"
    run_afters(out)  # the row is durable: the set is released
    assert stage.pending.pending() == (0, 0)
    assert stage.handle(rest[0], NOW + 3) == Output(), "a piece of a set written already"


def test_reassemble_dead_letters_what_cannot_join_a_set() -> None:
    stage = reassemble_stage()
    named = tuple(zip((name for name, _ in FORGED), (b"t", b"1", b"2"), strict=True))
    unparsable = Message(CHUNKS, 0, 3, b"1:s", b"{nope", named)
    original = letter_of(stage.handle(unparsable, NOW), "invalid_json", "parse")
    assert original.source == SourceRef("t", 1, 2)  # an internal topic: its headers name it
    first = forwarded(builders.pieces_of(builders.events(20), 2, chunk_id="c"))[0]
    assert stage.handle(first, NOW) == Output()
    recounted = builders.capture(
        snapshot=builders.snapshot_data(chunk_id="c", chunk_index=2, chunk_count=3)
    )
    (other,) = forwarded([recounted])
    original = letter_of(stage.handle(other, NOW), "invalid_chunk", "reassemble")
    assert original.value == recounted and original.source == SourceRef(CAPTURE_TOPIC, 1, 10)


def test_reassemble_refuses_a_new_set_past_the_teams_cap() -> None:
    stage = reassemble_stage(max_sets_per_team=1)
    one, two = (forwarded(builders.pieces_of(builders.events(20), 2))[0] for _ in range(2))
    assert stage.handle(one, NOW) == Output()
    original = letter_of(stage.handle(two, NOW), "too_many_open_sets", "reassemble")
    assert original.value == two.value


def test_reassemble_dead_letters_every_piece_of_a_set_that_does_not_decode() -> None:
    not_gzip = "bm90IGd6aXA="  # base64 of "not gzip", in two pieces
    pieces = [
        builders.capture(
            snapshot=builders.snapshot_data(
                chunk_id="c", chunk_index=i, chunk_count=2, data=not_gzip[i * 6 : (i + 1) * 6]
            )
        )
        for i in range(2)
    ]
    stage = reassemble_stage()
    first, second = forwarded(pieces)
    assert stage.handle(first, NOW) == Output()
    out = stage.handle(second, NOW)
    assert [letter.rejection.reason for letter in out.letters] == ["invalid_gzip"] * 2
    assert {letter.original.value for letter in out.letters} == set(pieces)
    assert {letter.original.key for letter in out.letters} == {b"1:session-1:c"}
    assert not out.rows and not out.stats
    run_afters(out)
    assert stage.pending.pending() == (0, 0)


def test_a_tick_expires_the_sets_of_its_partition_past_the_ttl() -> None:
    stage = reassemble_stage(settings(chunk_ttl_seconds="60"))
    pieces = builders.pieces_of(builders.events(20), 2, chunk_id="c")
    held = forwarded(pieces, partition=1)[0]
    assert stage.handle(held, NOW) == Output()
    assert stage.handle(tick(CHUNKS, 1), NOW + 59) == Output(), "inside the TTL"
    assert stage.handle(tick(CHUNKS, 0), NOW + 61) == Output(), "another partition's tick"
    original = letter_of(stage.handle(tick(CHUNKS, 1), NOW + 61), "chunk_expired", "reassemble")
    assert original == Original(pieces[0], b"1:session-1:c", SourceRef(CAPTURE_TOPIC, 1, 10))
    assert stage.pending.pending() == (0, 0)


# --- SummarizeStage (internal: batch statistics) --------------------------------------------


def summary(out: Output) -> list[dict[str, Any]]:
    return [dict(zip(SUMMARY_COLUMNS, row.values, strict=True)) for row in out.rows]


def test_summarize_counts_a_record_and_hands_its_part_out_on_the_next_tick() -> None:
    stats = builders.batch_stats(session_id="s-1", chunk_id="c-1")
    stage = summarize_stage()
    record = Message(STATS, 0, 5, None, builders.stats_record([stats]))
    assert stage.handle(record, NOW) == Output(), "counted; its row comes on a tick"
    out = stage.handle(tick(STATS, 0), NOW)
    (row,) = summary(out)
    assert (row["team_id"], row["session_id"], row["event_count"], row["message_count"]) == (
        1,
        "s-1",
        3,
        1,
    )
    assert row["min_first_timestamp"] == stats.figures.min_first_timestamp
    assert out.rows[0].origin[0].source.topic.endswith(":1:s-1")  # the part, as its letter
    assert not stage.handle(tick(STATS, 1), NOW).rows, "another partition's windows"
    run_afters(out)  # durable: the part is marked written
    assert not stage.handle(tick(STATS, 0), NOW).rows, "nothing new to write"
    assert stage.handle(record, NOW) == Output()  # a redelivered record: a duplicate
    assert not stage.handle(tick(STATS, 0), NOW).rows, "a duplicate is not counted twice"
    later = builders.batch_stats(session_id="s-1", chunk_id="c-2")
    stage.handle(Message(STATS, 0, 6, None, builders.stats_record([later])), NOW)
    (again,) = summary(stage.handle(tick(STATS, 0), NOW))
    assert (again["message_count"], again["version"]) == (2, row["version"] + 1)


@pytest.mark.parametrize(
    ("value", "why"),
    [
        (b"\xc1", "not msgpack"),
        (builders.stats_record([builders.batch_stats(team_id=0)]), "team 0"),
        (
            builders.stats_record([builders.batch_stats(figures_overrides={"event_count": -1})]),
            "a negative count",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) else "msg",
)
def test_summarize_dead_letters_a_record_it_cannot_count(value: bytes, why: str) -> None:
    stage = summarize_stage()
    original = letter_of(
        stage.handle(Message(STATS, 3, 8, None, value), NOW), "invalid_event", "summarize"
    )
    assert original.value == value and original.source == SourceRef(STATS, 3, 8), why
    assert not stage.handle(tick(STATS, 3), NOW).rows


def _span(**overrides: Any) -> ClickSpan:
    t = builders.TS
    values = dict(
        zip(ClickSpan.__struct_fields__, ("w", t, 1.0, 1.0, t, 1.0, 1.0, 1, 1, 1, 0), strict=True)
    )
    return ClickSpan(**(values | overrides))


@pytest.mark.parametrize(
    "value",
    [
        builders.stats_record(
            [builders.batch_stats(figures_overrides={"click_spans": [_span(first_x=float("nan"))]})]
        ),
        builders.stats_record(
            [builders.batch_stats(figures_overrides={"click_spans": [_span(lead=-1)]})]
        ),
        builders.stats_record(
            [builders.batch_stats(figures_overrides={"click_spans": [_span(last_timestamp=0)]})]
        ),
        builders.stats_record(
            [builders.batch_stats(figures_overrides={"click_spans": [_span(last_y=1e300)]})]
        ),
        msgspec.msgpack.encode([[1, "s", "w", "d", "c", 1, 1, 7, "not the old summary"]]),
    ],
    ids=["nan-coordinate", "negative-run", "timestamp-0", "far-coordinate", "neither-layout"],
)
def test_summarize_refuses_forged_click_spans_and_counts_the_next_record(value: bytes) -> None:
    """Click spans and the previous layout are new ways into a statistics record: a forged
    one is a dead letter, and a good record right after it is counted."""
    stage = summarize_stage()
    letter_of(stage.handle(Message(STATS, 0, 1, None, value), NOW), "invalid_event", "summarize")
    good = builders.batch_stats(figures_overrides={"click_spans": [_span()]})
    assert stage.handle(Message(STATS, 0, 2, None, builders.stats_record([good])), NOW) == Output()
    (row,) = stage.handle(tick(STATS, 0), NOW).rows
    assert row.values[SUMMARY_COLUMNS.index("click_spans")] == [msgspec.to_builtins(_span())]


def test_summarize_refuses_a_batch_past_the_teams_window_cap_and_counts_the_rest() -> None:
    cap = SETTINGS.max_open_windows_per_team
    batches = [builders.batch_stats(session_id=f"s-{i}", chunk_id=f"c-{i}") for i in range(cap + 1)]
    other = builders.batch_stats(session_id="o", chunk_id="c-o", team_id=2)
    stage = summarize_stage()
    out = stage.handle(Message(STATS, 0, 1, None, builders.stats_record([*batches, other])), NOW)
    (letter,) = out.letters
    assert (letter.rejection.reason, letter.rejection.stage) == (
        "too_many_open_windows",
        "summarize",
    )
    assert decode_stats(letter.original.value or b"") == [batches[-1]]  # that batch alone
    assert letter.original.source == SourceRef(STATS, 0, 1)
    written = {(r["team_id"], r["session_id"]) for r in summary(stage.handle(tick(STATS, 0), NOW))}
    assert written == {(1, f"s-{i}") for i in range(cap)} | {(2, "o")}


# --- PerformanceStage (input: performance_events_batches) -----------------------------------


def performance(raw: bytes | None) -> Output:
    return performance_stage().handle(Message(PERFORMANCE_TOPIC, 1, 4, None, raw, FORGED), NOW)


def test_performance_makes_one_row_per_entry() -> None:
    raw = builders.performance_message()
    out = performance(raw)
    rows = [dict(zip(PERFORMANCE_COLUMNS, row.values, strict=True)) for row in out.rows]
    assert [r["entry_type"] for r in rows] == ["resource", "paint", "longtask"]
    assert all(r["session_id"] == "session-1" and r["team_id"] == 1 for r in rows)
    origin = Original(raw, None, SourceRef(PERFORMANCE_TOPIC, 1, 4), FORGED)
    assert all(row.origin == (origin,) for row in out.rows)
    assert not (out.letters or out.forwards or out.stats or out.after)


def test_performance_keeps_the_good_entries_next_to_a_bad_one() -> None:
    entries = [{"name": "ok", "entryType": "paint", "startTime": 1}, {"entryType": 7}]
    raw = builders.performance_message(entries=entries)
    out = performance(raw)
    assert len(out.rows) == 1
    (letter,) = out.letters
    assert (letter.rejection.reason, letter.original.value) == ("invalid_entry", raw)
    assert "entry 1" in letter.rejection.error


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (None, "invalid_json"),
        (builders.performance_message(token="nope"), "unknown_token"),
        (builders.performance_message(time_origin=1000.5), "implausible_timestamp"),
    ],
    ids=lambda v: v if isinstance(v, str) else "msg",
)
def test_performance_dead_letters_a_batch_it_cannot_use(raw: bytes | None, reason: str) -> None:
    out = performance(raw)
    assert not out.rows
    (letter,) = out.letters
    assert letter.rejection.reason == reason
    assert letter.original == Original(raw, None, SourceRef(PERFORMANCE_TOPIC, 1, 4), FORGED)


# --- erasure: what arrives for an erased session or person is dropped and counted ---------

ERASED = builders.tombstone_holder(
    builders.erasure_row(1, "session", ("gone",)),
    builders.erasure_row(1, "person", distinct_id="forgotten"),
    builders.erasure_row(2, "before", before_ms=builders.TS + 1),
)


def dropped(stage: str) -> float:
    value = REGISTRY.get_sample_value("replay_erased_dropped_total", {"stage": stage})
    return value or 0.0


def erasing(s: Settings = SETTINGS) -> Decoder:
    return Decoder(s, PIPELINE_REGISTRY, ERASED)


def test_ingest_drops_batches_and_pieces_of_erased_sessions_and_people() -> None:
    stage = IngestStage(erasing())
    before = dropped("ingest")
    for raw in (
        builders.capture(session_id="gone"),
        builders.capture(session_id="other", distinct_id="forgotten"),
        builders.pieces_of(builders.events(20), 2, session_id="gone")[0],
        builders.pieces_of(builders.events(20), 2, distinct_id="forgotten")[1],
        builders.capture(token="token-2", team_id=2),  # starts before team 2's moment
    ):
        assert stage.handle(Message(CAPTURE_TOPIC, 0, 1, None, raw), NOW) == Output()
    assert dropped("ingest") == before + 5
    kept = builders.capture(session_id="kept", distinct_id="user-1")
    assert snapshot(stage.handle(Message(CAPTURE_TOPIC, 0, 2, None, kept), NOW))
    late = builders.capture(
        token="token-2",
        team_id=2,
        snapshot=builders.snapshot_data(
            data=builders.encode_events(builders.events(3, start=builders.TS + 1))
        ),
    )
    assert snapshot(stage.handle(Message(CAPTURE_TOPIC, 0, 3, None, late), NOW)), "at the moment"
    piece = builders.pieces_of(builders.events(20), 2, token="token-2", team_id=2)[0]
    assert stage.handle(Message(CAPTURE_TOPIC, 0, 4, None, piece), NOW).forwards, (
        "a piece's first timestamp is unknown: the date waits for the decode"
    )
    assert dropped("ingest") == before + 5


def test_items_drops_a_batch_of_an_erased_person() -> None:
    stage = ItemsStage(erasing())
    before = dropped("items")
    raw = builders.items_value(session_id="new-session", distinct_id="forgotten")
    assert stage.handle(Message(ITEMS_TOPIC, 0, 1, None, raw), NOW) == Output()
    assert dropped("items") == before + 1
    kept = builders.items_value(session_id="new-session", distinct_id="someone")
    assert stage.handle(Message(ITEMS_TOPIC, 0, 2, None, kept), NOW).rows


def erasing_reassembly(holder: TombstoneHolder) -> ReassembleStage:
    stage = reassemble_stage()
    stage.decoder = Decoder(SETTINGS, PIPELINE_REGISTRY, holder)
    return stage


def test_reassemble_drops_late_pieces_and_sweeps_held_sets_once_erased() -> None:
    holder = TombstoneHolder(lambda: rows)
    rows: list[TombstoneRow] = []
    holder.refresh()
    stage = erasing_reassembly(holder)
    gone = forwarded(builders.pieces_of(builders.events(30), 3, session_id="gone"))
    person = forwarded(builders.pieces_of(builders.events(30), 3, distinct_id="forgotten"))
    kept = forwarded(builders.pieces_of(builders.events(30), 3, session_id="kept"))
    for message in (gone[0], gone[1], person[0], kept[0]):
        assert stage.handle(message, NOW) == Output()
    assert stage.pending.pending()[0] == 3
    rows += [
        builders.erasure_row(1, "session", ("gone",)),
        builders.erasure_row(1, "person", distinct_id="forgotten"),
    ]
    holder.refresh()
    held, late = dropped("reassemble_held"), dropped("reassemble")
    assert stage.handle(tick(CHUNKS, 0), NOW + 1) == Output(), "no letter for erased pieces"
    assert dropped("reassemble_held") == held + 3
    (open_set,) = stage.pending.open_sets(0)
    assert open_set.startswith("1:kept:")
    assert (
        stage.handle(gone[2], NOW + 2) == Output() and stage.handle(person[1], NOW + 2) == Output()
    )
    assert dropped("reassemble") == late + 2
    assert stage.pending.pending()[0] == 1, "late pieces start no set"
    assert stage.handle(kept[1], NOW + 3) == Output()
    assert snapshot(stage.handle(kept[2], NOW + 3))["session_id"] == "kept"


def test_reassemble_drops_a_set_that_starts_before_its_teams_moment_once_decoded() -> None:
    stage = erasing_reassembly(ERASED)
    pieces = forwarded(builders.pieces_of(builders.events(30), 2, token="token-2", team_id=2))
    before = dropped("reassemble")
    assert stage.handle(pieces[0], NOW) == Output()
    out = stage.handle(pieces[1], NOW)
    assert not (out.rows or out.stats or out.letters) and dropped("reassemble") == before + 1
    run_afters(out)
    assert stage.pending.pending() == (0, 0), "its pieces are released"


def test_summarize_drops_statistics_and_windows_of_erased_sessions() -> None:
    holder = TombstoneHolder(lambda: rows)
    rows: list[TombstoneRow] = []
    holder.refresh()
    stage = summarize_stage()
    stage.tombstones = holder
    batches = [
        builders.batch_stats(session_id="gone"),
        builders.batch_stats(session_id="theirs", figures_overrides={"distinct_id": "forgotten"}),
        builders.batch_stats(session_id="kept"),
    ]
    record = Message(STATS, 0, 5, None, builders.stats_record(batches))
    assert stage.handle(record, NOW) == Output()
    run_afters(stage.handle(tick(STATS, 0), NOW))  # every part written once
    rows += [
        builders.erasure_row(1, "session", ("gone",)),
        builders.erasure_row(1, "person", distinct_id="forgotten"),
    ]
    holder.refresh()
    held, late = dropped("summarize_held"), dropped("summarize")
    more = [builders.batch_stats(session_id=s) for s in ("gone", "kept")]
    assert stage.handle(Message(STATS, 0, 6, None, builders.stats_record(more)), NOW) == Output()
    assert dropped("summarize") == late + 1
    out = stage.handle(tick(STATS, 0), NOW)
    assert [row["session_id"] for row in summary(out)] == ["kept"]
    assert dropped("summarize_held") == held + 2, "the erased windows, written once before"
    assert stage.windows.session_counts(0) == (1, 0), "only the kept session is held"


def test_summarize_never_writes_a_due_part_the_sweep_has_not_reached() -> None:
    stage = summarize_stage()
    stats = builders.batch_stats(session_id="gone")
    stage.handle(Message(STATS, 0, 5, None, builders.stats_record([stats])), NOW)
    stage.tombstones = ERASED
    stage.sweeps.take(0, ERASED.current, list, 1)  # as if swept already, with nothing listed
    before = dropped("summarize_held")
    assert not stage.handle(tick(STATS, 0), NOW).rows
    assert dropped("summarize_held") == before + 1


def test_performance_drops_the_entries_of_erased_sessions_and_their_letter() -> None:
    stage = PerformanceStage(erasing())
    before = dropped("performance")
    entries = [{"name": "ok", "entryType": "paint", "startTime": 1}, {"entryType": 7}]
    for raw in (
        builders.performance_message(session_id="gone", entries=entries),
        builders.performance_message(distinct_id="forgotten"),
    ):
        out = stage.handle(Message(PERFORMANCE_TOPIC, 1, 4, None, raw), NOW)
        assert out == Output()
    assert dropped("performance") == before + 1 + 3
    dated = builders.performance_message(
        token="token-2",
        team_id=2,
        time_origin=builders.TS + 0.5,
        entries=[
            {"name": n, "entryType": "paint", "startTime": t} for n, t in (("a", 0), ("b", 5))
        ],
    )
    out = stage.handle(Message(PERFORMANCE_TOPIC, 1, 5, None, dated), NOW)
    names = [dict(zip(PERFORMANCE_COLUMNS, r.values, strict=True))["name"] for r in out.rows]
    assert names == ["b"], "an entry before team 2's moment is dropped, one after is kept"
