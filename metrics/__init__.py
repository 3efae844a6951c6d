"""Every Prometheus metric of replay-ingest, declared once with its labels.

Kept at the bottom of the dependency graph (imports nothing of the project) so that
streams, sinks and entry points all count into the same registry.
"""

from __future__ import annotations

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    start_http_server,
)

# *_created samples double the exposition for no alerting value.
disable_created_metrics()

REGISTRY = CollectorRegistry(auto_describe=True)

_SIZE_BUCKETS = (1e3, 1e4, 1e5, 1e6, 4e6, 16e6, 64e6, 256e6)
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)

WORKER_UP = Gauge("replay_worker_up", "1 while the worker runs", registry=REGISTRY)

ASSIGNED_PARTITIONS = Gauge(
    "replay_assigned_partitions",
    "Partitions assigned to this worker, per topic",
    ["topic"],
    registry=REGISTRY,
)
REBALANCES = Counter(
    "replay_rebalances_total",
    "Consumer group rebalances this worker went through",
    registry=REGISTRY,
)
CONSUMER_REWINDS = Counter(
    "replay_consumer_rewinds_total",
    "Partitions re-read from their committed offset because Faust skipped records there",
    ["topic", "partition"],
    registry=REGISTRY,
)
CONSUMER_LAG = Gauge(
    "replay_consumer_lag_messages",
    "Fetch high watermark minus committed offset, per assigned partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
EVENT_TIME_LAG = Gauge(
    "replay_event_time_lag_seconds",
    "Now minus the newest rrweb event timestamp processed, per partition",
    ["topic", "partition"],
    registry=REGISTRY,
)
MESSAGES_CONSUMED = Counter(
    "replay_messages_consumed_total",
    "Kafka messages taken from an input or internal topic",
    ["topic", "partition"],
    registry=REGISTRY,
)
BYTES_CONSUMED = Counter(
    "replay_bytes_consumed_total",
    "Value bytes of the messages taken from a topic",
    ["topic", "partition"],
    registry=REGISTRY,
)
DLQ_MESSAGES = Counter(
    "replay_dlq_messages_total",
    "Messages sent to a dead-letter topic, by reason and pipeline stage",
    ["topic", "reason", "stage"],
    registry=REGISTRY,
)
SNAPSHOT_BATCHES = Counter(
    "replay_snapshot_batches_total",
    "Reassembled and decoded snapshot batches (one per chunk_id); per-team counts are in "
    "ClickHouse (a label per team would grow with the tenants)",
    registry=REGISTRY,
)
FULL_SNAPSHOT_FLAG_MISMATCH = Counter(
    "replay_full_snapshot_flag_mismatch_total",
    "Batches whose producer has_full_snapshot flag disagrees with their events",
    ["producer_flag"],
    registry=REGISTRY,
)
CHUNK_PIECES = Counter(
    "replay_chunk_pieces_total",
    "Pieces of multi-piece chunk sets seen by reassembly, by outcome",
    ["outcome"],
    registry=REGISTRY,
)
CHUNK_SETS_PENDING = Gauge(
    "replay_chunk_sets_pending",
    "Incomplete chunk sets held in the reassemble table (this worker)",
    registry=REGISTRY,
)
CHUNK_PENDING_BYTES = Gauge(
    "replay_chunk_pending_bytes",
    "Bytes of the pieces held for incomplete chunk sets (this worker)",
    registry=REGISTRY,
)
CHUNK_SETS_EXPIRED = Counter(
    "replay_chunk_sets_expired_total",
    "Incomplete chunk sets dropped to the DLQ after the chunk TTL",
    registry=REGISTRY,
)
REASSEMBLY_SECONDS = Histogram(
    "replay_reassembly_seconds",
    "Time from the first piece of a chunk set to its completion",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
SUMMARY_BATCHES = Counter(
    "replay_summary_batches_total",
    "Batch statistics received by the session summary, counted or recognised as duplicate",
    ["outcome"],
    registry=REGISTRY,
)
SUMMARY_PARTS_CLOSED = Counter(
    "replay_summary_parts_closed_total",
    "Session window parts written for the last time and closed",
    registry=REGISTRY,
)
RECENT_SESSIONS = Gauge(
    "replay_recent_sessions",
    "Sessions held in the summary windows (recent), by whether any batch had a full snapshot",
    ["partition", "has_full_snapshot"],
    registry=REGISTRY,
)
S3_OBJECTS = Counter(
    "replay_s3_objects_total",
    "Session archives uploaded to S3 and verified",
    registry=REGISTRY,
)
S3_BYTES = Counter(
    "replay_s3_bytes_total",
    "Compressed bytes of the session archives uploaded to S3",
    registry=REGISTRY,
)
S3_FAILURES = Counter(
    "replay_s3_failures_total",
    "Failed S3 calls (retried; a spill that still fails deletes nothing)",
    ["operation"],
    registry=REGISTRY,
)
SESSIONS_ARCHIVED = Counter(
    "replay_sessions_archived_total",
    "Sessions moved from ClickHouse to S3 (uploaded, indexed, raw rows deleted)",
    registry=REGISTRY,
)
CLICKHOUSE_ROWS = Counter(
    "replay_clickhouse_rows_total",
    "Rows durably inserted into ClickHouse",
    ["table"],
    registry=REGISTRY,
)
CLICKHOUSE_BYTES = Counter(
    "replay_clickhouse_bytes_total",
    "Approximate payload bytes durably inserted into ClickHouse",
    ["table"],
    registry=REGISTRY,
)
CLICKHOUSE_BLOCK_ROWS = Histogram(
    "replay_clickhouse_insert_block_rows",
    "Rows per ClickHouse insert (insert block)",
    ["table"],
    buckets=(1, 10, 50, 100, 500, 1000, 5000, 20000),
    registry=REGISTRY,
)
CLICKHOUSE_BLOCK_BYTES = Histogram(
    "replay_clickhouse_insert_block_bytes",
    "Payload bytes per ClickHouse insert (insert block)",
    ["table"],
    buckets=_SIZE_BUCKETS,
    registry=REGISTRY,
)
CLICKHOUSE_INSERT_SECONDS = Histogram(
    "replay_clickhouse_insert_seconds",
    "Latency of successful ClickHouse inserts",
    ["table"],
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CLICKHOUSE_RETRIES = Counter(
    "replay_clickhouse_insert_retries_total",
    "ClickHouse inserts scheduled again after a failure",
    ["table"],
    registry=REGISTRY,
)
CLICKHOUSE_FAILURES = Counter(
    "replay_clickhouse_insert_failures_total",
    "Failed ClickHouse insert attempts (each is retried; rows are never dropped)",
    ["table"],
    registry=REGISTRY,
)


def serve(host: str, port: int) -> None:
    """Expose /metrics on host:port from a daemon thread."""
    start_http_server(port, addr=host, registry=REGISTRY)


CLICKHOUSE_REFUSED = Counter(
    "replay_clickhouse_insert_refused_total",
    "ClickHouse inserts refused for their rows' data (not retried: the block is split in halves)",
    ["table"],
    registry=REGISTRY,
)
CLICKHOUSE_UNWRITABLE = Counter(
    "replay_clickhouse_unwritable_rows_total",
    "Rows ClickHouse refused on their own for their data, handed back to be dead-lettered",
    ["table"],
    registry=REGISTRY,
)
SPILL_FAILURES = Counter(
    "replay_spill_failures_total",
    "Sessions whose spill failed (nothing of theirs deleted; the next run tries again), "
    "by reason: unsafe_id, missing_object, s3_rejected, s3_unavailable, internal_error",
    ["reason"],
    registry=REGISTRY,
)

SHARE_REFUSALS = Counter(
    "replay_share_refusals_total",
    "Share-link tokens refused by the worker's web server (403), by reason: forged, "
    "expired, other_session (a valid token for another team or session), malformed",
    ["reason"],
    registry=REGISTRY,
)


# The capture endpoint (`replay-ingest capture`), served on its own port at /metrics.
CAPTURE_REQUESTS = Counter(
    "replay_capture_requests_total",
    "HTTP requests answered by the capture endpoint, by route (its pattern) and status",
    ["route", "status"],
    registry=REGISTRY,
)
CAPTURE_RECEIVED_BYTES = Counter(
    "replay_capture_received_bytes_total",
    "Request body bytes received by the capture endpoint, as sent (compressed)",
    ["route"],
    registry=REGISTRY,
)
CAPTURE_EVENTS = Counter(
    "replay_capture_events_total",
    "posthog events and plain rrweb batches received, by outcome: stored (written to "
    "Kafka), ignored (not a recording), dropped_team_off (the team does not record)",
    ["outcome"],
    registry=REGISTRY,
)
CAPTURE_MESSAGES = Counter(
    "replay_capture_messages_total",
    "Kafka messages the capture endpoint wrote and Kafka acknowledged, by format: items "
    "($snapshot_items) or chunked (pieces of a single event over the message limit)",
    ["format"],
    registry=REGISTRY,
)
CAPTURE_REJECTIONS = Counter(
    "replay_capture_rejections_total",
    "Requests refused, by reason: too_large (413), bad_body (400), unknown_token (401), "
    "rate_limited (429), kafka_unavailable (503)",
    ["reason"],
    registry=REGISTRY,
)
CAPTURE_PRODUCE_SECONDS = Histogram(
    "replay_capture_produce_seconds",
    "From handing a request's messages to the producer to Kafka acknowledging all of them",
    buckets=_LATENCY_BUCKETS,
    registry=REGISTRY,
)
CAPTURE_KAFKA_CONNECTED = Gauge(
    "replay_capture_kafka_connected",
    "1 while the capture endpoint's producer is connected to Kafka and its last produce "
    "was acknowledged; 0 before the first connection and from a failed produce until "
    "one succeeds again (recordings are answered 503 meanwhile)",
    registry=REGISTRY,
)


# The `gaps` stage: the dead letters of the recording inputs, as the missing batches of
# their sessions (ClickHouse `session_recording_gaps`).
GAPS_RECORDED = Counter(
    "replay_gaps_recorded_total",
    "Dead letters recorded as a gap of their team's session (a row of "
    "session_recording_gaps), by the letter's reason",
    ["reason"],
    registry=REGISTRY,
)
GAPS_UNATTRIBUTED = Counter(
    "replay_gaps_unattributed_total",
    "Dead letters recorded as no gap: not provably a batch of a team's session (unknown "
    "token, team mismatch, recording off, unreadable, unsafe ids) or no batch at all "
    "(summarize letters), by the letter's reason (`other` if it names none)",
    ["reason"],
    registry=REGISTRY,
)
GAPS_FAILED = Counter(
    "replay_gaps_failed_total",
    "Dead letters the gaps stage failed on (internal_error) or whose gap row ClickHouse "
    "refused (unwritable_row): logged and counted, never dead-lettered again (the stage "
    "reads the dead-letter topics)",
    ["reason"],
    registry=REGISTRY,
)

# -- erasure ------------------------------------------------------------------------------

ERASED_DROPPED = Counter(
    "replay_erased_dropped_total",
    "Pieces, batches, statistics and performance entries of an erased session or person "
    "that arrived after the erasure, dropped (never written), by stage",
    ["stage"],
    registry=REGISTRY,
)

ERASURE_TOMBSTONES = Gauge(
    "replay_erasure_tombstones",
    "Erased sessions, persons and per-team `before` moments this worker refuses data of",
    registry=REGISTRY,
)

ERASURE_TOMBSTONE_RELOAD_FAILURES = Counter(
    "replay_erasure_tombstone_reload_failures_total",
    "Reloads of the erasure tombstones that failed (the last ones loaded stay in force)",
    registry=REGISTRY,
)
