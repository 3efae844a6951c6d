"""The executor on the worker: a leader-only Faust timer every REPLAY_ERASURE_POLL_SECONDS,
each run in a thread with its own ClickHouse client and event loop (as the spill), so
the stream stages never wait for a delete. A request made through any worker's API is
a row in ClickHouse, so the leader picks it up whichever worker took it."""

from __future__ import annotations

import asyncio
import logging

import faust

from config.settings import Settings
from erasure.execute import Executor
from sinks.clickhouse.schema import connect
from sinks.s3 import ObjectStore

log = logging.getLogger(__name__)


def settle_seconds(settings: Settings) -> float:
    """How long after a request (and after its sessions are recorded) the executor
    waits before deleting: two reloads of the workers' tombstones."""
    return 2 * settings.erasure_poll_seconds


def executor(settings: Settings, client: object, settle: float) -> Executor:
    store = ObjectStore(
        settings.s3_url, settings.s3_endpoint_url, retry_seconds=settings.s3_retry_seconds
    )
    return Executor.on(client, store, settle)


def erase_in_thread(settings: Settings) -> int:
    """One run of the executor with its own client and loop; requests completed."""
    client = connect(settings.clickhouse_url)
    try:
        done = asyncio.run(executor(settings, client, settle_seconds(settings)).run_pending())
        return len(done)
    finally:
        client.close()


def define_erasure_timer(app: faust.App, settings: Settings) -> None:
    """Carry out pending erasures every REPLAY_ERASURE_POLL_SECONDS on the leader."""

    @app.timer(settings.erasure_poll_seconds, on_leader=True)
    async def erase() -> None:
        """Run the executor off the event loop; a failure waits for the next turn."""
        try:
            done = await asyncio.to_thread(erase_in_thread, settings)
            if done:
                log.info("erasure: %d request(s) done", done)
        except Exception as exc:
            log.warning("erasure run failed, the next run resumes: %s", exc)
