"""The pipeline without Kafka or Faust: its stages over plain dicts (tables are dicts),
built with settings whose bounds are small enough for a test (or hypothesis) to reach
every one cheaply, and stand-ins for the two Faust things the loop touches, an event
and a topic. No server runs."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from config.settings import Settings, load_settings
from config.teams import Team, TeamRegistry
from streams.output import TICK_HEADER, Message, Output
from streams.reassembly import PendingChunks
from streams.stages import Decoder, IngestStage, PerformanceStage, ReassembleStage, SummarizeStage
from streams.topics import CAPTURE_TOPIC, DLQ_TOPIC, REASSEMBLE, SUMMARIZE, repartition_topic
from streams.windows import SessionWindows
from tests.builders import TS

BOUNDS = {
    "REPLAY_MAX_MESSAGE_BYTES": "400000",
    "REPLAY_MAX_RECORD_BYTES": "300000",
    "REPLAY_MAX_DECODED_BYTES": "1000000",
    "REPLAY_MAX_SET_BYTES": "500000",
    "REPLAY_MAX_OPEN_SETS_PER_TEAM": "3",
    "REPLAY_MAX_OPEN_WINDOWS_PER_TEAM": "3",
    "REPLAY_CHUNK_TTL_SECONDS": "60",
}


def settings(**overrides: str) -> Settings:
    """The small bounds, with overrides by field name (`chunk_ttl_seconds="5"`)."""
    return load_settings(BOUNDS | {f"REPLAY_{k.upper()}": v for k, v in overrides.items()})


SETTINGS = settings()
REGISTRY = TeamRegistry.of(
    [Team(1, "token-1"), Team(2, "token-2", retention_days=30), Team(3, "token-off", False)]
)
NOW = TS / 1000 + 600  # ten minutes after the builders' events (seconds, as the loop's)
CHUNKS = repartition_topic(SETTINGS.app_id, REASSEMBLE)
STATS = repartition_topic(SETTINGS.app_id, SUMMARIZE)


# --- the stages ---------------------------------------------------------------------------


def decoder(s: Settings = SETTINGS) -> Decoder:
    return Decoder(s, REGISTRY)


def ingest_stage(s: Settings = SETTINGS) -> IngestStage:
    return IngestStage(decoder(s))


def performance_stage(s: Settings = SETTINGS) -> PerformanceStage:
    return PerformanceStage(decoder(s))


def reassemble_stage(
    s: Settings = SETTINGS, max_sets_per_team: int | None = None
) -> ReassembleStage:
    sets = s.max_open_sets_per_team if max_sets_per_team is None else max_sets_per_team
    return ReassembleStage(decoder(s), PendingChunks({}, s.max_set_bytes, sets))


def summarize_stage(s: Settings = SETTINGS) -> SummarizeStage:
    windows = SessionWindows(
        {},
        size_ms=s.summary_window_seconds * 1000,
        expiry_ms=s.summary_window_expiry_seconds * 1000,
        dedup_seconds=s.summary_dedup_seconds,
        max_windows_per_team=s.max_open_windows_per_team,
    )
    return SummarizeStage(windows)


def tick(topic: str, partition: int) -> Message:
    """The tick the agents send themselves on an internal topic's partition."""
    return Message(topic, partition, 0, None, b"", ((TICK_HEADER, b"1"),))


def run_afters(out: Output) -> None:
    """What the loop runs once the output is durable (outside the error boundary)."""
    for after in out.after:
        after()


# --- stand-ins for Faust ------------------------------------------------------------------


class Record(NamedTuple):
    """The attributes of a Faust event's message that the loop reads."""

    topic: str = CAPTURE_TOPIC
    partition: int = 2
    offset: int = 17
    key: Any = b"k"
    headers: Any = (("token", None),)


@dataclass
class Event:
    """The two attributes of a Faust event that the loop reads (weak-referenceable, as
    the loop makes it the current event)."""

    value: Any
    message: Record = field(default_factory=Record)


@dataclass
class RecordingTopic:
    """Stands in for a Faust topic: remembers every record sent to it; each send's
    delivery is a future that is done unless `held` (then the test completes it)."""

    name: str = DLQ_TOPIC
    held: bool = False
    sent: list[dict[str, Any]] = field(default_factory=list)
    deliveries: list[asyncio.Future[None]] = field(default_factory=list)

    def get_topic_name(self) -> str:
        return self.name

    async def send(self, **record: Any) -> asyncio.Future[None]:
        self.sent.append(record)
        delivered: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.held:
            delivered.set_result(None)
        self.deliveries.append(delivered)
        return delivered
