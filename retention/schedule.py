"""The spill on the worker: a leader-only Faust timer, each run in a thread with its own
ClickHouse client and event loop, so the stream stages never wait for S3."""

from __future__ import annotations

import asyncio
import logging

import faust

from config.settings import Settings
from config.teams import TeamRegistry
from retention.spill import Spiller
from sinks.clickhouse.schema import connect
from sinks.s3 import ObjectStore

log = logging.getLogger(__name__)


def spill_in_thread(settings: Settings, registry: TeamRegistry) -> int:
    """One spill with its own ClickHouse client and event loop (the worker's timer);
    returns the sessions archived (failures are logged and counted by the run)."""
    client = connect(settings.clickhouse_url)
    try:
        store = ObjectStore(
            settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
        )
        report = asyncio.run(Spiller(settings, registry, client, store).spill_once())
        return report.archived
    finally:
        client.close()


def define_spill_timer(app: faust.App, settings: Settings, registry: TeamRegistry) -> None:
    """Spill every REPLAY_SPILL_INTERVAL_SECONDS on the leader."""

    @app.timer(settings.spill_interval_seconds, on_leader=True)
    async def spill() -> None:
        """Move sessions past retention to S3, off the event loop; failures wait a turn."""
        try:
            archived = await asyncio.to_thread(spill_in_thread, settings, registry)
            log.info("spill: %d session(s) archived", archived)
        except Exception as exc:
            log.warning("spill failed, nothing deleted for the failing session: %s", exc)
