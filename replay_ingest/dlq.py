"""`replay-ingest dlq list|replay`: inspect dead letters and re-inject them after a fix.

A replay sends the original bytes (and key, and headers other than our own) back to the
topic named by the letter's `dlq-source-topic` header, then records the letter's
coordinates in `session_recording_events_dlq_replays`. Letters recorded there are
skipped by later replays, so running the same replay twice replays nothing the second
time. The pipeline is idempotent, so even a replay interrupted between the two writes
leaves the tables as one replay would.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from replay_ingest.localstack import create_topics

DLQ_TOPIC = "session_recording_events_dlq"
REPLAYS_TOPIC = f"{DLQ_TOPIC}_replays"
REPLAY_REF_HEADER = "replay-dlq-ref"


@dataclass(frozen=True, slots=True)
class Letter:
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes]]

    @property
    def ref(self) -> str:
        return f"{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get("dlq-reason", "")


async def read_all(bootstrap: str, topic: str, quiet_seconds: float = 1.5) -> list[ConsumerRecord]:
    """Every record of a topic, from the start to the high watermark seen while reading."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        if not partitions:
            await consumer._client.force_metadata_update()
            partitions = consumer.partitions_for_topic(topic) or set()
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        quiet_since = time.monotonic()
        while time.monotonic() - quiet_since < quiet_seconds:
            batches = await consumer.getmany(timeout_ms=300)
            for batch in batches.values():
                records.extend(batch)
            if batches:
                quiet_since = time.monotonic()
            elif await _caught_up(consumer, tps):
                break
        return records
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """At the fetch high watermark everywhere (Tansu's end offsets are not to be trusted)."""
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def letters_of(records: Iterable[ConsumerRecord]) -> list[Letter]:
    out = []
    for r in records:
        raw = list(r.headers or [])
        headers = {k: v.decode("utf-8", "replace") for k, v in raw}
        out.append(Letter(r.partition, r.offset, r.timestamp, r.key, r.value, headers, raw))
    return out


def select(letters: Iterable[Letter], reason: str | None, since: datetime | None) -> list[Letter]:
    floor = since.timestamp() * 1000 if since else None
    return [
        letter
        for letter in letters
        if (reason is None or letter.reason == reason)
        and (floor is None or letter.timestamp_ms >= floor)
    ]


def summary(letters: list[Letter], samples: int = 2) -> list[str]:
    """Lines: count per reason and stage, then a few samples with their headers."""
    counts = Counter((letter.reason, letter.headers.get("dlq-stage", "")) for letter in letters)
    lines = [f"{len(letters)} dead letter(s)"]
    for (reason, stage), count in counts.most_common():
        lines.append(f"  {reason:<20} {stage:<12} {count}")
        shown = [
            x for x in letters if (x.reason, x.headers.get("dlq-stage", "")) == (reason, stage)
        ]
        for letter in shown[:samples]:
            info = {k: v for k, v in letter.headers.items() if k.startswith("dlq-")}
            lines.append(f"    at {DLQ_TOPIC}/{letter.ref}: {msgspec.json.encode(info).decode()}")
            lines.append(f"      value: {letter.value[:160]!r}")
    return lines


async def replay(
    bootstrap: str, reason: str, since: datetime | None, dry_run: bool
) -> tuple[int, int]:
    """Replay matching letters not replayed before; returns (replayed, already replayed)."""
    await create_topics(bootstrap, [REPLAYS_TOPIC], 1)
    done = {r.key.decode() for r in await read_all(bootstrap, REPLAYS_TOPIC) if r.key}
    chosen = select(letters_of(await read_all(bootstrap, DLQ_TOPIC)), reason, since)
    todo = [letter for letter in chosen if letter.ref not in done]
    if dry_run or not todo:
        return len(todo), len(chosen) - len(todo)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024
    )
    await producer.start()
    try:
        for letter in todo:
            target = letter.headers.get("dlq-source-topic")
            if not target:
                continue
            headers = [(k, v) for k, v in letter.raw_headers if not k.startswith("dlq-")]
            headers.append((REPLAY_REF_HEADER, letter.ref.encode()))
            await producer.send_and_wait(target, letter.value, key=letter.key, headers=headers)
            record = {"replayed_at": time.time(), "reason": letter.reason, "topic": target}
            await producer.send_and_wait(
                REPLAYS_TOPIC, msgspec.json.encode(record), key=letter.ref.encode()
            )
    finally:
        await producer.stop()
    return len(todo), len(chosen) - len(todo)


def run_list(bootstrap: str, reason: str | None, since: datetime | None) -> list[str]:
    return summary(select(letters_of(asyncio.run(read_all(bootstrap, DLQ_TOPIC))), reason, since))
