"""What the worker reports about its own consumption, for the SREs' lag alerts, and the
one repair it makes to it.

Lag is the fetch high watermark minus the committed offset: Tansu's ListOffsets is
wrong (DESIGN), the high watermark in fetch responses is right on every broker. A
partition nobody wrote to has high watermark 0 and lag 0.

Faust (0.15) can skip records: when its fetch loop leaves the records of one fetch
part-way (seen right after an assignment, with the take() buffer full), the rest of them
are never delivered although the next fetch's records are. The agents acknowledge each partition in
offset order, so acknowledged offsets standing above a hole at the committed offset can
only mean such a skip; Faust then never commits that partition again. `SkipWatch`
finds such holes and the monitor rewinds the partition to its committed offset: the
skipped records are read and handled, the rest again (replays are idempotent).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import faust

import metrics

log = logging.getLogger(__name__)
SKIP_GRACE_SECONDS = 15.0  # many commit intervals: a hole that stays is no race


def partition_lag(highwater: int | None, committed: int | None) -> int:
    """Messages not yet committed; 0 before the first fetch answers."""
    if highwater is None:
        return 0
    return max(0, highwater - (committed or 0))


def report(app: faust.App, newest_event: Mapping[tuple[str, int], int]) -> None:
    """Refresh the lag, assignment and event-time-lag gauges from the consumer."""
    consumer: Any = app.consumer
    changelogs = set(app.tables.changelog_topics)  # read for recovery, never committed
    assigned = [tp for tp in consumer.assignment() if tp.topic not in changelogs]
    metrics.CONSUMER_LAG.clear()
    metrics.ASSIGNED_PARTITIONS.clear()
    per_topic: dict[str, int] = {}
    for tp in assigned:
        lag = partition_lag(consumer.highwater(tp), consumer._committed_offset.get(tp))
        metrics.CONSUMER_LAG.labels(tp.topic, str(tp.partition)).set(lag)
        per_topic[tp.topic] = per_topic.get(tp.topic, 0) + 1
    for topic, count in per_topic.items():
        metrics.ASSIGNED_PARTITIONS.labels(topic).set(count)
    now = time.time()
    for (topic, partition), newest in newest_event.items():
        metrics.EVENT_TIME_LAG.labels(topic, str(partition)).set(max(0.0, now - newest / 1000))


@dataclass
class SkipWatch:
    """Partitions whose acknowledged offsets stand above a hole at the committed offset."""

    grace_seconds: float
    _since: dict[Any, tuple[int, float]] = field(default_factory=dict)

    def due(
        self, acked: Mapping[Any, Sequence[int]], committed: Mapping[Any, int | None], now: float
    ) -> list[tuple[Any, int]]:
        """(partition, committed offset) of every hole that has stayed `grace_seconds`."""
        due = []
        for tp, offsets in list(acked.items()):
            base = committed.get(tp)
            # Faust's own test: it commits while min(acked) - committed <= 1 (or nothing
            # was committed yet), and holds the partition back otherwise
            if not offsets or not base or min(offsets) - base <= 1:
                self._since.pop(tp, None)
                continue
            seen_base, since = self._since.setdefault(tp, (base, now))
            if seen_base != base:
                self._since[tp] = (base, now)
            elif now - since >= self.grace_seconds:
                due.append((tp, base))
                del self._since[tp]
        return due


async def rewind_skipped(app: faust.App, watch: SkipWatch) -> None:
    """Re-read each partition where Faust skipped records, from its committed offset."""
    consumer: Any = app.consumer
    for tp, offset in watch.due(consumer._acked, consumer._committed_offset, time.monotonic()):
        log.warning("records skipped in %s; re-reading it from offset %d", tp, offset)
        metrics.CONSUMER_REWINDS.labels(tp.topic, str(tp.partition)).inc()
        await consumer.seek(tp, offset)


def define_monitor(app: faust.App, newest_event: Mapping[tuple[str, int], int]) -> None:
    watch = SkipWatch(SKIP_GRACE_SECONDS)

    @app.timer(2.0)
    async def consumption() -> None:
        report(app, newest_event)
        await rewind_skipped(app, watch)

    def rebalanced(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.REBALANCES.inc()

    app.on_partitions_assigned.connect(rebalanced)
