"""The worker's stages chained in one process for the benchmarks: no Kafka, dict stores.

The stages are the worker's own (streams.stages); only what the loop (streams.loop)
and Kafka do between them is done here by hand, in the same order:

* a forward of `ingest` is handed at once to `reassemble`, as a message of its
  repartition topic on the partition its key hashes to, with the source headers the loop sends;
* rows go into the ClickHouseSink as the loop adds them (values, size, origin);
* at the end of a handled take (:meth:`StageChain.flush`) its statistics become records
  for `summarize`, a few per partition as the loop sends them, the rows are written and
  then the stages' `after` callbacks run (the worker runs them once the rows are durable).

A benchmark workload is valid input: a dead letter or an unwritable row means the
workload or the code under test is broken, so both raise instead of being counted.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from bench.workloads import REGISTRY
from config.settings import Settings, load_settings
from sinks.clickhouse.sink import ClickHouseSink
from streams.loop import STATS_RECORD_BYTES, partition_of
from streams.models import BatchStats, encode_stats
from streams.output import Message, Output
from streams.reassembly import PendingChunks
from streams.stages import Decoder, IngestStage, ReassembleStage, SummarizeStage
from streams.tombstones import TombstoneHolder
from streams.topics import CAPTURE_TOPIC, REASSEMBLE, SUMMARIZE, repartition_topic
from streams.windows import SessionWindows


def default_settings() -> Settings:
    """The worker's defaults (no REPLAY_* variable is read)."""
    return load_settings({})


def pending_chunks(settings: Settings) -> PendingChunks:
    """A PendingChunks over a dict, bounded as the worker's (streams.app)."""
    return PendingChunks({}, settings.max_set_bytes, settings.max_open_sets_per_team)


def session_windows(settings: Settings) -> SessionWindows:
    """A SessionWindows over a dict, sized and bounded as the worker's (streams.app)."""
    return SessionWindows(
        {},
        settings.summary_window_seconds * 1000,
        settings.summary_window_expiry_seconds * 1000,
        settings.summary_dedup_seconds,
        settings.max_open_windows_per_team,
    )


class StageChain:
    """ingest -> reassemble (-> summarize) over dict stores, rows into `sink` (or none)."""

    def __init__(
        self,
        sink: ClickHouseSink | None,
        *,
        summarize: bool,
        settings: Settings | None = None,
        clock: Callable[[], float] = time.time,
        tombstones: TombstoneHolder | None = None,
    ) -> None:
        self.settings = settings or default_settings()
        held = tombstones or TombstoneHolder()
        decoder = Decoder(self.settings, REGISTRY, held)
        self.ingest = IngestStage(decoder)
        self.reassemble = ReassembleStage(decoder, pending_chunks(self.settings))
        windows = session_windows(self.settings)
        self.summarize = SummarizeStage(windows, tombstones=held) if summarize else None
        self.sink = sink
        self.clock = clock
        self.now = clock()  # one moment per handled take, as in the loop
        self.rows = 0  # rows produced since the last flush
        self._offset = 0
        self._stats: list[BatchStats] = []
        self._afters: list[Callable[[], None]] = []
        self._reassemble_topic = repartition_topic(self.settings.app_id, REASSEMBLE)
        self._summarize_topic = repartition_topic(self.settings.app_id, SUMMARIZE)

    def process(self, raw: bytes) -> None:
        """One capture message through `ingest`, and its forward (if any) through `reassemble`."""
        self._offset += 1
        out = self.ingest.handle(Message(CAPTURE_TOPIC, 0, self._offset, None, raw), self.now)
        self._apply(out)
        for forward in out.forwards:
            partition = partition_of(forward.key.decode(), self.settings.partitions)
            message = Message(
                self._reassemble_topic,
                partition,
                self._offset,
                forward.key,
                forward.value,
                tuple(forward.headers),
            )
            self._apply(self.reassemble.handle(message, self.now))

    def _apply(self, out: Output) -> None:
        if out.letters:
            letter = out.letters[0]
            raise RuntimeError(f"dead letter in a benchmark: {letter.rejection}")
        for row in out.rows:
            if self.sink is not None:
                self.sink.add(row.values, row.nbytes, row.origin)
        self.rows += len(out.rows)
        self._stats += out.stats
        self._afters += out.after

    async def flush(self) -> None:
        """End of a handled take: statistics to `summarize`, rows written, afters run."""
        self._summarize()
        if self.sink is not None:
            unwritable = await self.sink.flush()
            if unwritable:
                raise RuntimeError(f"unwritable row in a benchmark: {unwritable[0].error}")
        afters, self._afters = self._afters, []
        for after in afters:
            after()
        self.rows = 0
        self.now = self.clock()

    def _summarize(self) -> None:
        """The take's batch statistics as the loop sends them: grouped by the partition their
        (team, session) hashes to, a few records each, then handled by `summarize`."""
        batches, self._stats = self._stats, []
        if self.summarize is None:
            return
        by_partition: dict[int, list[BatchStats]] = {}
        for stats in batches:
            key = f"{stats.team_id}:{stats.session_id}"
            by_partition.setdefault(partition_of(key, self.settings.partitions), []).append(stats)
        for partition, group in by_partition.items():
            for record in encode_stats(group, STATS_RECORD_BYTES):
                message = Message(self._summarize_topic, partition, 0, None, record)
                self._apply(self.summarize.handle(message, self.now))
