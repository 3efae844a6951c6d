"""Build the Faust application from the settings: topics, tables, agents, the erasure
tombstones every stage reads (the web views and the spill timer are added by
replay_ingest.worker)."""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

import faust
from clickhouse_connect.driver.client import Client
from faust.web.base import BlueprintManager

from config.settings import Settings
from config.teams import TeamRegistry
from sinks.clickhouse.erasure import tombstones
from sinks.clickhouse.queries import fetch
from sinks.clickhouse.schema import (
    GAPS_COLUMNS,
    GAPS_TABLE,
    PERFORMANCE_COLUMNS,
    PERFORMANCE_TABLE,
    SNAPSHOT_COLUMNS,
    SNAPSHOT_TABLE,
    SUMMARY_COLUMNS,
    SUMMARY_TABLE,
    connect,
)
from sinks.clickhouse.sink import ClickHouseSink
from streams.agents import define_agents
from streams.decoder import Decoder
from streams.gaps import GapsOutbox, GapsStage
from streams.loop import Outbox, StageLoop
from streams.monitor import define_monitor
from streams.reassembly import PendingChunks
from streams.stages import (
    IngestStage,
    ItemsStage,
    PerformanceStage,
    ReassembleStage,
    SummarizeStage,
)
from streams.tables import reassemble_table, summarize_table
from streams.tombstones import TombstoneHolder, TombstoneRow
from streams.topics import (
    DLQ_TOPIC,
    GAPS,
    INGEST,
    INTERNAL_STAGES,
    ITEMS,
    ITEMS_DLQ_TOPIC,
    PERFORMANCE,
    PERFORMANCE_DLQ_TOPIC,
    REASSEMBLE,
    SUMMARIZE,
    stage_topics,
)
from streams.windows import SessionWindows

# Tansu holds a group join for session_timeout / 2 (DESIGN): 6 s joins in ~3-5 s.
BROKER_SESSION_TIMEOUT = 6.0
BROKER_HEARTBEAT_INTERVAL = 1.0
# Stages whose topics the worker creates if missing, with its partition count.
_OWN_TOPICS = (*INTERNAL_STAGES, GAPS)


def _sink(settings: Settings, table: str, columns: tuple[str, ...]) -> ClickHouseSink:
    """An agent's own sink (and client) for `table`."""
    return ClickHouseSink(
        client_factory=lambda: connect(settings.clickhouse_url),
        table=table,
        columns=columns,
        max_rows=settings.sink_max_rows,
        max_bytes=settings.sink_max_bytes,
        retry_max_seconds=settings.sink_retry_max_seconds,
    )


def _outbox(settings: Settings, table: str, columns: tuple[str, ...], dlq: faust.TopicT) -> Outbox:
    """An agent's outbox: its own sink for `table`, and its dead-letter topic."""
    return Outbox(_sink(settings, table, columns), dlq, depth=settings.takes_in_flight)


class _TombstoneReader:
    """Reads the erasures of the last REPLAY_ERASURE_TOMBSTONE_DAYS with a client of its
    own (opened on first use, again after a failure); called in a thread, one call at a
    time (TombstoneHolder.refresh holds a lock)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.client: Client | None = None

    def __call__(self) -> Iterable[TombstoneRow]:
        since_ms = int((time.time() - self.settings.erasure_tombstone_days * 86_400) * 1000)
        try:
            if self.client is None:
                self.client = connect(self.settings.clickhouse_url)
            return fetch(self.client, tombstones(since_ms))[1]
        except Exception:
            client, self.client = self.client, None
            if client is not None:
                client.close()
            raise


def tombstone_holder(settings: Settings) -> TombstoneHolder:
    """The worker's tombstones, loaded from ClickHouse (streams.tombstones): one per
    process, shared by its stages and by whatever records erasures (which calls
    `refresh()` right after recording one)."""
    return TombstoneHolder(_TombstoneReader(settings))


def _raw_topic(app: faust.App, *names: str, partitions: int | None = None) -> faust.TopicT:
    """Bytes in, bytes out: values are never decoded by Faust, so originals stay untouched.
    Topics given a partition count are the worker's own: it creates them if missing."""
    return app.topic(
        *names,
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        partitions=partitions,
        internal=partitions is not None,
    )


def create_app(
    settings: Settings, registry: TeamRegistry, tombstones: TombstoneHolder | None = None
) -> faust.App:
    """The worker's app; `tombstones` defaults to a holder of its own (tombstone_holder)."""
    held = tombstone_holder(settings) if tombstones is None else tombstones
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        store=settings.store,
        datadir=str(settings.data_dir / "faust"),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        topic_partitions=settings.partitions,
        broker_session_timeout=BROKER_SESSION_TIMEOUT,
        broker_heartbeat_interval=BROKER_HEARTBEAT_INTERVAL,
        broker_commit_interval=1.0,
        consumer_auto_offset_reset="earliest",
        producer_max_batch_size=settings.producer_max_batch_bytes,
        producer_max_request_size=max(16 * 1024 * 1024, 2 * settings.max_message_bytes),
        stream_buffer_maxsize=settings.stream_buffer_maxsize,
        table_standby_replicas=0,
        logging_config=None,
    )
    # internal topics (and the DLQs `gaps` reads) are created by the worker if missing
    owned = settings.partitions
    topics = {
        stage: _raw_topic(app, *names, partitions=owned if stage in _OWN_TOPICS else None)
        for stage, names in stage_topics(settings.app_id).items()
    }
    dlq = _raw_topic(app, DLQ_TOPIC, partitions=owned)
    items_dlq = _raw_topic(app, ITEMS_DLQ_TOPIC, partitions=owned)
    performance_dlq = _raw_topic(app, PERFORMANCE_DLQ_TOPIC, partitions=owned)
    pending = PendingChunks(
        reassemble_table(app, settings),
        max_set_bytes=settings.max_set_bytes,
        max_sets_per_team=settings.max_open_sets_per_team,
    )
    windows = SessionWindows(
        summarize_table(app, settings),
        size_ms=settings.summary_window_seconds * 1000,
        expiry_ms=settings.summary_window_expiry_seconds * 1000,
        dedup_seconds=settings.summary_dedup_seconds,
        max_windows_per_team=settings.max_open_windows_per_team,
    )
    decoder = Decoder(settings, registry, held)
    newest_event: dict[tuple[str, int], int] = {}

    def loop(stage: Any, table: str, columns: tuple[str, ...], dead: faust.TopicT) -> StageLoop:
        return StageLoop(
            stage,
            _outbox(settings, table, columns, dead),
            reassemble_topic=topics[REASSEMBLE],
            summarize_topic=topics[SUMMARIZE],
            partitions=settings.partitions,
            newest_event=newest_event,
        )

    reassemble = ReassembleStage(decoder, pending)
    summarize = SummarizeStage(windows, tombstones=held)
    loops = {
        INGEST: loop(IngestStage(decoder), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, dlq),
        ITEMS: loop(ItemsStage(decoder), SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, items_dlq),
        REASSEMBLE: loop(reassemble, SNAPSHOT_TABLE, SNAPSHOT_COLUMNS, dlq),
        SUMMARIZE: loop(summarize, SUMMARY_TABLE, SUMMARY_COLUMNS, dlq),
        PERFORMANCE: loop(
            PerformanceStage(decoder), PERFORMANCE_TABLE, PERFORMANCE_COLUMNS, performance_dlq
        ),
        GAPS: StageLoop(
            GapsStage(decoder),
            GapsOutbox(_sink(settings, GAPS_TABLE, GAPS_COLUMNS), None, settings.takes_in_flight),
        ),
    }
    define_agents(app, topics, loops, settings, held)

    def rebalanced(sender: Any, /, *args: Any, **kwargs: Any) -> None:
        pending.forget_indexes()  # rebuilt from the tables, for the partitions held now
        windows.forget_indexes()
        reassemble.sweeps.clear()  # partitions held now are swept again
        summarize.sweeps.clear()

    app.on_partitions_assigned.connect(rebalanced)
    define_monitor(app, newest_event)
    app.web.blueprints = BlueprintManager()  # none of Faust's views (/, /table, /router...)
    return app
