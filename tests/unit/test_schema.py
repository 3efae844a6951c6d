"""The summary declared once: what derives from it agrees with it, and records written
by the previous layout (window changelog values, statistics records) still decode."""

from __future__ import annotations

import msgspec

from sinks.clickhouse.schema import SESSION_FIELDS, SUMMARY_COLUMNS, SUMMARY_KEY_TYPES
from sinks.clickhouse.summary import FIGURES, HIDDEN, Merge, SessionFigures
from streams.figures import _RULES
from streams.models import decode_stats
from streams.parts import WindowState
from streams.windows import SessionWindows

T0 = 1_793_000_000_000
# A part's figures as the first layout wrote them (19 fields, in order); fields
# appended since must decode from it with their defaults.
OLD_FIGURES = [
    "user-1", T0, T0 + 900, "https://a/", T0, ["https://a/"], 2, 1, 5, 1, 0, 0,
    [[T0, T0 + 900]], 1000, 12, 1, True, ["w1"], 7,
]  # fmt: skip


def test_columns_follow_the_declaration() -> None:
    assert (*SUMMARY_KEY_TYPES, *SessionFigures.__struct_fields__) == SUMMARY_COLUMNS
    shown = [c.out or name for name, c in FIGURES.items() if c.out != HIDDEN]
    assert ("team_id", "session_id", *shown, "storage") == SESSION_FIELDS
    assert set(_RULES) == set(Merge), "every merge rule has its Python side"
    for name, column in FIGURES.items():
        assert (column.merge is Merge.EARLIEST) == bool(column.by), name
        assert not column.by or column.by in FIGURES, name


def test_a_window_written_by_the_previous_layout_still_decodes() -> None:
    part = ["c1", [1, 2], OLD_FIGURES, 10.0, 2, None]
    raw = msgspec.msgpack.encode([1, "s", T0, 0, [part]])
    window = msgspec.msgpack.decode(raw, type=WindowState)
    figures = window.parts[0].aggregate
    assert (figures.distinct_id, figures.retention_days) == ("user-1", 7)
    assert_appended_fields_have_their_defaults(figures)
    windows = SessionWindows({b"w|1:s|%d" % T0: raw}, 60_000, 1000, 100)
    (row,) = windows.due(0, 10**9)  # the old record is read, merged and written as usual
    assert row.part.aggregate.all_urls == ["https://a/"]


def test_a_statistics_record_of_the_previous_layout_still_decodes() -> None:
    old_summary = [T0, T0 + 900, 12, True, 2, 1, 5, 1, 0, 0, "https://a/", T0, ["https://a/"]]
    old = [1, "s", "w1", "user-1", "c1", 1, 1000, 7, [*old_summary, [[T0, T0 + 900]]]]
    (stats,) = decode_stats(msgspec.msgpack.encode([old]))
    figures = stats.figures
    assert (stats.team_id, stats.session_id, stats.chunk_id, stats.window_id) == (
        1,
        "s",
        "c1",
        "w1",
    )
    encoded = msgspec.msgpack.decode(msgspec.msgpack.encode(figures))
    assert encoded[: len(OLD_FIGURES)] == OLD_FIGURES
    assert_appended_fields_have_their_defaults(figures)


def assert_appended_fields_have_their_defaults(figures: SessionFigures) -> None:
    for field in msgspec.structs.fields(SessionFigures)[len(OLD_FIGURES) :]:
        missing = field.default is msgspec.NODEFAULT
        expected = field.default_factory() if missing else field.default
        assert getattr(figures, field.name) == expected, field.name
