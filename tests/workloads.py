"""Generated workloads for the end-to-end tests, with their ground truth: the capture
messages of `replay_ingest.generator` (team 1, token-1) and, per batch, the row it must
become; per session, the summary the plain reference computes (tests/reference.py); for
the archive, per session its events in archive order. Options are GenerateOptions
fields, overriding the defaults here."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from replay_ingest.generator.capture import BatchTruth, generate
from replay_ingest.generator.sessions import GenerateOptions
from tests import reference
from tests.stack import PARTITIONS

NOW = datetime.now(UTC)  # the archive workload's "now": retention is counted from it
RETENTION_DAYS = 7  # team 1's, in tests.stack.TEAMS


# sessions of small batches (tens of KB): many batches per session, quick to decode
SMALL_BATCHES: dict[str, Any] = {
    "incremental_count_mean": 10,
    "full_size_mean": 30_000,
    "full_size_sd": 20_000,
    "incremental_size_mean": 5_000,
    "incremental_size_sd": 5_000,
}


def options(sessions: int, seed: int, **overrides: Any) -> GenerateOptions:
    return GenerateOptions(sessions=sessions, seed=seed, token="token-1", team_id=1, **overrides)


def generated(
    sessions: int, seed: int, **overrides: Any
) -> tuple[list[bytes], dict[str, BatchTruth]]:
    """The messages, and the truth of every batch row by chunk_id."""
    messages: list[bytes] = []
    truth: dict[str, BatchTruth] = {}
    for batch_messages, batch in generate(options(sessions, seed, **overrides)):
        messages.extend(batch_messages)
        truth[batch.chunk_id] = batch
    return messages, truth


def summarised(
    sessions: int, seed: int, **overrides: Any
) -> tuple[list[bytes], dict[str, BatchTruth], dict[str, dict[str, Any]]]:
    """The messages, the truth of every batch row, and the reference summary per session."""
    messages: list[bytes] = []
    rows: dict[str, BatchTruth] = {}
    batches: dict[str, list[dict[str, Any]]] = {}
    for batch_messages, truth in generate(options(sessions, seed, **overrides)):
        messages.extend(batch_messages)
        rows[truth.chunk_id] = truth
        batches.setdefault(truth.session_id, []).append(
            {"truth": msgspec.structs.asdict(truth), "events": reference.events_of(batch_messages)}
        )
    summaries = {
        session: reference.session_summary(b) | {"retention_days": RETENTION_DAYS}
        for session, b in batches.items()
    }
    return messages, rows, summaries


def shuffled(messages: list[bytes], seed: int) -> tuple[list[bytes], list[int]]:
    """10% of the messages twice, everything shuffled (pieces interleave), random partitions."""
    rng = random.Random(seed)
    stream = messages + rng.sample(messages, len(messages) // 10)
    rng.shuffle(stream)
    return stream, [rng.randrange(PARTITIONS) for _ in stream]


# --- the archive ----------------------------------------------------------------------


def archive_options(sessions: int, seed: int) -> GenerateOptions:
    """Sessions spread from 12 to 5 days before NOW: some past the 7-day retention, some not."""
    return options(
        sessions,
        seed,
        chunk_size=100_000,
        incremental_count_mean=6,
        incremental_size_mean=5_000,
        start=NOW - timedelta(days=12),
    )


def archive_sessions(sessions: int, seed: int) -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """The archive workload's messages; per session its events in archive order (by
    timestamp, then batch start, chunk_id and position), its first and last timestamp."""
    messages: list[bytes] = []
    found: dict[str, dict[str, Any]] = {}
    for batch_messages, truth in generate(archive_options(sessions, seed)):
        messages.extend(batch_messages)
        session = found.setdefault(truth.session_id, {"events": [], "end": 0, "start": 2**62})
        for index, event in enumerate(reference.events_of(batch_messages)):
            order = (event["timestamp"], truth.first_timestamp, truth.chunk_id, index)
            session["events"].append((order, event))
        session["end"] = max(session["end"], truth.last_timestamp)
        session["start"] = min(session["start"], truth.first_timestamp)
    for session in found.values():
        session["events"] = [event for _, event in sorted(session["events"], key=lambda x: x[0])]
    return messages, found


def past_retention(sessions: dict[str, dict[str, Any]]) -> set[str]:
    """The sessions of `archive_sessions` that ended before the retention cutoff."""
    cutoff = (NOW - timedelta(days=RETENTION_DAYS)).timestamp() * 1000
    return {s for s, info in sessions.items() if info["end"] < cutoff}
