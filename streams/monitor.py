"""What the worker reports about its own consumption, for the SREs' lag alerts.

Lag is the fetch high watermark minus the committed offset: Tansu's ListOffsets is
wrong (DESIGN), the high watermark in fetch responses is right on every broker. A
partition nobody wrote to has high watermark 0 and lag 0.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import faust

import metrics


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


def define_monitor(app: faust.App, newest_event: Mapping[tuple[str, int], int]) -> None:
    @app.timer(2.0)
    async def consumption() -> None:
        report(app, newest_event)

    def rebalanced(sender: Any, /, *args: Any, signal: Any, **kwargs: Any) -> None:
        metrics.REBALANCES.inc()

    app.on_partitions_assigned.connect(rebalanced)
