"""Every Kafka topic name the project reads or writes, declared once.

Input topics and their dead-letter topics are fixed by DESIGN.md; the internal
(repartition) topics are prefixed with the app id, as Faust names its own.
"""

from __future__ import annotations

CAPTURE_TOPIC = "session_recording_events"
PERFORMANCE_TOPIC = "performance_events_batches"

# Each input topic's dead-letter topic: `<input topic>_dlq` (DESIGN).
DLQ_SUFFIX = "_dlq"
DLQ_OF = {topic: f"{topic}{DLQ_SUFFIX}" for topic in (CAPTURE_TOPIC, PERFORMANCE_TOPIC)}
INPUT_TOPICS = frozenset(DLQ_OF)
DLQ_TOPICS = frozenset(DLQ_OF.values())
DLQ_TOPIC = DLQ_OF[CAPTURE_TOPIC]
PERFORMANCE_DLQ_TOPIC = DLQ_OF[PERFORMANCE_TOPIC]
# Where `dlq replay` records what it replayed, so that no letter is replayed twice.
REPLAYS_TOPIC = f"{DLQ_TOPIC}_replays"


def chunks_topic(app_id: str) -> str:
    """Pieces of multi-piece chunk sets, keyed by team and session (internal)."""
    return f"{app_id}-session_recording_chunks-repartition"


def stats_topic(app_id: str) -> str:
    """Per-batch statistics on their way to the session windows (internal)."""
    return f"{app_id}-session_batches-repartition"
