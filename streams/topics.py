"""Every Kafka topic name the project reads or writes, and every stage name, declared once.

Input topics and their dead-letter topics are fixed by DESIGN.md; the internal
(repartition) topics are named after the stage that reads them and prefixed with the
app id, as Faust names its own (changelogs).
"""

from __future__ import annotations

CAPTURE_TOPIC = "session_recording_events"  # chunked `$snapshot` messages
ITEMS_TOPIC = "session_recording_snapshot_item_events"  # `$snapshot_items`, one batch each
PERFORMANCE_TOPIC = "performance_events_batches"

# Each input topic's dead-letter topic: `<input topic>_dlq` (DESIGN).
DLQ_SUFFIX = "_dlq"
DLQ_OF = {
    topic: f"{topic}{DLQ_SUFFIX}" for topic in (CAPTURE_TOPIC, ITEMS_TOPIC, PERFORMANCE_TOPIC)
}
INPUT_TOPICS = frozenset(DLQ_OF)
DLQ_TOPICS = frozenset(DLQ_OF.values())
DLQ_TOPIC = DLQ_OF[CAPTURE_TOPIC]
ITEMS_DLQ_TOPIC = DLQ_OF[ITEMS_TOPIC]
PERFORMANCE_DLQ_TOPIC = DLQ_OF[PERFORMANCE_TOPIC]
# Where `dlq replay` records what it replayed, so that no letter is replayed twice.
REPLAYS_TOPIC = f"{DLQ_TOPIC}_replays"


# The stages of the pipeline. A stage's name is also its agent's name, its Stage class's
# `name` and its label on metrics and dead letters; an internal stage's name also names
# its repartition topic (`repartition_topic`) and its changelog-backed table, whose
# changelog Faust names `<app id>-<stage>-changelog`.
INGEST = "ingest"  # reads CAPTURE_TOPIC
ITEMS = "items"  # reads ITEMS_TOPIC; one message is one batch, no reassembly
REASSEMBLE = "reassemble"  # reads its repartition topic; table: pieces of chunk sets
SUMMARIZE = "summarize"  # reads its repartition topic; table: session windows
PERFORMANCE = "performance"  # reads PERFORMANCE_TOPIC
GAPS = "gaps"  # reads GAPS_TOPICS: records the batches known missing, per session
STAGES = (INGEST, ITEMS, REASSEMBLE, SUMMARIZE, PERFORMANCE, GAPS)
INTERNAL_STAGES = (REASSEMBLE, SUMMARIZE)
# The dead-letter topics of the two recording inputs: each letter of a batch is a gap.
GAPS_TOPICS = (DLQ_TOPIC, ITEMS_DLQ_TOPIC)


def repartition_topic(app_id: str, stage: str) -> str:
    """The internal topic an internal stage reads: pieces of multi-piece chunk sets
    (`reassemble`) or records of batch statistics (`summarize`), by team and session."""
    if stage not in INTERNAL_STAGES:
        raise ValueError(f"{stage!r} reads an input topic, not a repartition topic")
    return f"{app_id}-{stage}-repartition"


def stage_topics(app_id: str) -> dict[str, tuple[str, ...]]:
    """The topics each stage's agent reads, by stage (one each but for `gaps`)."""
    return {
        INGEST: (CAPTURE_TOPIC,),
        ITEMS: (ITEMS_TOPIC,),
        REASSEMBLE: (repartition_topic(app_id, REASSEMBLE),),
        SUMMARIZE: (repartition_topic(app_id, SUMMARIZE),),
        PERFORMANCE: (PERFORMANCE_TOPIC,),
        GAPS: GAPS_TOPICS,
    }
