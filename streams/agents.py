"""The agents: one short loop per stage, each driving its StageLoop over takes.

An agent is named as its stage (streams.topics.STAGES) and reads that stage's topic:

* ``ingest`` reads `session_recording_events` (streams.stages.IngestStage);
* ``items`` reads `session_recording_snapshot_item_events` (ItemsStage), one
  `$snapshot_items` message per batch, dead letters to its own `..._dlq`;
* ``reassemble`` reads `<app id>-reassemble-repartition` (ReassembleStage);
* ``summarize`` reads `<app id>-summarize-repartition` (SummarizeStage);
* ``performance`` reads `performance_events_batches` (PerformanceStage);
* ``gaps`` reads the DLQs of the two recording inputs (streams.gaps.GapsStage) and
  writes the batches they hold as gaps of their sessions, never dead-lettering.

A *take* is what an agent takes from its stream at once (Faust's ``take``: up to
REPLAY_TAKE_MAX_MESSAGES messages, waiting at most REPLAY_TAKE_MAX_SECONDS). Each
agent takes with acks disabled and acknowledges a take only once everything it
produced is durable (streams.loop). Leader timers tick the two stateful stages, on
every partition, to expire chunk sets and flush windows.

Every worker (not only the leader) reloads the erasure tombstones every
REPLAY_ERASURE_POLL_SECONDS, in a thread, and no agent takes a message before the first
load succeeded (streams.tombstones).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any, cast

import faust
from faust.types import EventT

from streams.loop import StageLoop
from streams.output import TICK_HEADER
from streams.tombstones import TombstoneHolder
from streams.topics import REASSEMBLE, SUMMARIZE


def _takes(stream: faust.StreamT, size: int, within: float) -> AsyncIterator[Sequence[EventT]]:
    """Takes of events that are acknowledged only when the caller acks them."""
    return cast(faust.Stream, stream).noack_take(size, within)


async def send_ticks(topic: Any, partitions: int) -> None:
    """Ask every partition of `topic` to run its periodic work (leader only)."""
    for partition in range(partitions):
        await topic.send(value=b"", partition=partition, headers=[(TICK_HEADER, b"1")])


def define_agents(
    app: faust.App,
    topics: dict[str, Any],
    loops: dict[str, StageLoop],
    settings: Any,
    tombstones: TombstoneHolder,
) -> None:
    """Register one agent per stage (named as its stage), the leader's tick timers and
    every worker's tombstone reload."""
    size, within = settings.take_max_messages, settings.take_max_seconds

    async def run(stream: faust.StreamT, loop: StageLoop) -> None:
        """Handle take after take; each is acknowledged once durable, in order."""
        await tombstones.ready(settings.erasure_poll_seconds)
        async for events in _takes(stream, size, within):
            afters = await loop.handle(events)

            async def finish(events: Sequence[EventT] = events, afters: list = afters) -> None:
                for after in afters:
                    after()
                for event in events:
                    await stream.ack(event)

            await loop.out.seal(finish)

    for name, loop in loops.items():

        async def agent(stream: faust.StreamT, loop: StageLoop = loop) -> None:
            await run(stream, loop)

        agent.__name__ = agent.__qualname__ = name  # as Faust names it in logs
        app.agent(topics[name], name=name)(agent)

    @app.timer(settings.erasure_poll_seconds)
    async def reload_tombstones() -> None:
        await asyncio.to_thread(tombstones.refresh)

    @app.timer(settings.chunk_expiry_interval_seconds, on_leader=True)
    async def expiry_ticks() -> None:
        await send_ticks(topics[REASSEMBLE], settings.partitions)

    @app.timer(settings.summary_flush_interval_seconds, on_leader=True)
    async def flush_ticks() -> None:
        await send_ticks(topics[SUMMARIZE], settings.partitions)
