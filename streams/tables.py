"""The changelog-backed tables of the pipeline, each named after the stage that owns it,
and how to write to them while handling a take."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import faust
from faust.streams import _current_event
from faust.types import EventT

from config.settings import Settings
from streams.topics import REASSEMBLE, SUMMARIZE


def reassemble_table(app: faust.App, settings: Settings) -> Any:
    """Pieces and per-set state of multi-piece chunk sets, keyed by (team, session, chunk_id).

    Raw bytes in and out: each value is at most one original capture message, so no
    changelog record is larger than one input piece (DESIGN: Kafka refuses > 1 MB).
    """
    return app.Table(
        REASSEMBLE,
        partitions=settings.partitions,
        key_type=bytes,  # bytes -> the "raw" codec for keys, values and changelog
        value_type=bytes,
        help="Held pieces and state of incomplete chunk sets",
    )


def summarize_table(app: faust.App, settings: Settings) -> Any:
    """Per-session partial statistics, keyed by (team, session, event-time window start).

    A plain changelog-backed table rather than Faust's windowed-table expiry, which in
    faust-streaming 0.15 closes windows by wall clock, drops windows older than the last
    one it closed (late data), deletes without a changelog tombstone and forgets its
    expiry heap on restart. Windows here close on the partition's event-time watermark,
    through the changelog, with late batches kept as further parts (streams.windows).
    """
    return app.Table(
        SUMMARIZE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        help="Partial session statistics per event-time window",
    )


@contextmanager
def event_context(event: EventT) -> Iterator[None]:
    """Make `event` the current event while the loop handles it.

    Faust routes a table write to the changelog partition (and RocksDB partition) of
    the *current* event. Under `take()`, the current event is the last one buffered,
    not the one being handled, so every write would land on that one's partition.
    """
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)
