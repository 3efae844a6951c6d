"""`replay-ingest dlq list|replay`: inspect dead letters and re-inject them after a fix.

Letters are read from every dead-letter topic (`streams.topics.DLQ_TOPICS`) or from the
one asked for. A letter is data from outside: its headers came with it and may name any
topic (an internal one, a changelog, another DLQ) or garbage. So a replay sends a
letter's original bytes (and key, and headers other than our own) back only to the input
topic whose DLQ holds it, and only when its `dlq-source-topic` header names that topic;
every other letter is skipped and reported. Each replay is then recorded in
`REPLAYS_TOPIC` under the letter's `<dlq topic>/<partition>:<offset>`; recorded letters
are skipped by later replays, so running the same replay twice replays nothing the
second time. (Records written before both DLQs were read are keyed `<partition>:<offset>`
and meant the snapshot DLQ.) The pipeline is idempotent, so even a replay interrupted
between the two writes leaves the tables as one replay would.

Strings from letters are printed with their non-printable characters escaped: a crafted
header must not drive the terminal.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition

from replay_ingest.localstack import create_topics
from streams.topics import DLQ_OF, DLQ_TOPIC, DLQ_TOPICS, REPLAYS_TOPIC

REPLAY_REF_HEADER = "replay-dlq-ref"
# Ours, never forwarded from a letter: the worker's dead-letter headers and its internal ones.
OWN_HEADER_PREFIXES = ("dlq-", "replay-")
INPUT_OF = {dlq: topic for topic, dlq in DLQ_OF.items()}
READ_TIMEOUT_SECONDS = 120.0
SHOWN_SKIPS = 10


def escape(text: str) -> str:
    """`text` with each non-printable character (controls, bidi overrides, separators)
    written as a JSON `\\uXXXX` escape: safe on a terminal, and JSON text stays JSON."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else _json_escape(c) for c in text)


def _json_escape(char: str) -> str:
    units = char.encode("utf-16-be")
    return "".join(f"\\u{units[i]:02x}{units[i + 1]:02x}" for i in range(0, len(units), 2))


@dataclass(frozen=True, slots=True)
class Letter:
    topic: str
    partition: int
    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None  # None: a tombstone, replayed as one
    headers: dict[str, str]
    raw_headers: list[tuple[str, bytes]]

    @property
    def ref(self) -> str:
        """Where the letter is: the key of its replay record."""
        return f"{self.topic}/{self.partition}:{self.offset}"

    @property
    def reason(self) -> str:
        return self.headers.get("dlq-reason", "")

    @property
    def source(self) -> str:
        return self.headers.get("dlq-source-topic", "")

    @property
    def target(self) -> str | None:
        """The input topic this letter may go back to: the one whose DLQ holds it, if its
        header names it; None for any other source, whatever it names."""
        home = INPUT_OF.get(self.topic)
        return home if home is not None and self.source == home else None


@dataclass
class Replay:
    """What a replay did (or would do, on a dry run)."""

    replayed: int = 0
    already: int = 0
    refused: list[Letter] = field(default_factory=list)
    erased: int = 0  # letters of erased sessions or persons, never sent back

    def lines(self, reason: str, dry_run: bool) -> list[str]:
        verb = "would replay" if dry_run else "replayed"
        lines = [
            f"{verb} {self.replayed} dead letter(s) with reason {escape(reason)}; "
            f"{self.already} already replayed before; "
            f"{len(self.refused)} skipped: source is not the input topic of their DLQ; "
            f"{self.erased} skipped: of an erased session or person"
        ]
        for letter in self.refused[:SHOWN_SKIPS]:
            source = msgspec.json.encode(letter.source).decode()
            lines.append(f"  skipped {letter.ref}: dlq-source-topic {escape(source)}")
        if len(self.refused) > SHOWN_SKIPS:
            lines.append(f"  ... and {len(self.refused) - SHOWN_SKIPS} more")
        return lines


def dlq_topics(topic: str | None) -> list[str]:
    """The DLQ topics to read: the one asked for, else all."""
    if topic is None:
        return sorted(DLQ_TOPICS)
    if topic not in DLQ_TOPICS:
        raise ValueError(f"{topic!r} is not a DLQ topic (one of {', '.join(sorted(DLQ_TOPICS))})")
    return [topic]


async def read_all(
    bootstrap: str, topics: list[str], timeout: float = READ_TIMEOUT_SECONDS
) -> list[ConsumerRecord]:
    """Every record of `topics` (those that exist), from the start to the fetch high
    watermark of each partition (Tansu's end offsets are not to be trusted). Fails at
    the deadline rather than answer with part of a topic: a replay must see every
    record of what it has done before."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [
            TopicPartition(topic, p)
            for topic in topics
            for p in sorted(consumer.partitions_for_topic(topic) or ())
        ]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        records: list[ConsumerRecord] = []
        deadline = time.monotonic() + timeout
        while not await _caught_up(consumer, tps):
            if time.monotonic() > deadline:
                raise TimeoutError(f"could not read {', '.join(topics)} to the end in {timeout}s")
            for fetched in (await consumer.getmany(timeout_ms=300)).values():
                records.extend(fetched)
        return records
    finally:
        await consumer.stop()


async def _caught_up(consumer: AIOKafkaConsumer, tps: list[TopicPartition]) -> bool:
    """At the fetch high watermark everywhere (None until a fetch has answered)."""
    for tp in tps:
        highwater = consumer.highwater(tp)
        if highwater is None or await consumer.position(tp) < highwater:
            return False
    return True


def letters_of(records: Iterable[ConsumerRecord]) -> list[Letter]:
    out = []
    for r in records:
        raw = list(r.headers or [])
        headers = {k: (v or b"").decode("utf-8", "replace") for k, v in raw}
        out.append(
            Letter(r.topic, r.partition, r.offset, r.timestamp, r.key, r.value, headers, raw)
        )
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
    """Lines: count per DLQ, reason and stage, then a few samples with their headers."""

    def group(letter: Letter) -> tuple[str, str, str]:
        return letter.topic, letter.reason, letter.headers.get("dlq-stage", "")

    counts = Counter(group(letter) for letter in letters)
    width = max(map(len, DLQ_TOPICS))
    lines = [f"{len(letters)} dead letter(s)"]
    for (topic, reason, stage), count in sorted(counts.items(), key=lambda kv: (kv[0][0], -kv[1])):
        lines.append(f"  {topic:<{width}} {escape(reason):<20} {escape(stage):<12} {count}")
        shown = [x for x in letters if group(x) == (topic, reason, stage)]
        for letter in shown[:samples]:
            info = {k: v for k, v in letter.headers.items() if k.startswith("dlq-")}
            lines.append(f"    at {letter.ref}: {escape(msgspec.json.encode(info).decode())}")
            lines.append(f"      value: {(letter.value or b'')[:160]!r}")
    return lines


async def done_refs(bootstrap: str) -> set[str]:
    """Refs of the letters replayed before; old `<partition>:<offset>` keys meant the
    snapshot DLQ (topic names never hold `/`)."""
    await create_topics(bootstrap, [REPLAYS_TOPIC], 1)
    keys = [r.key.decode() for r in await read_all(bootstrap, [REPLAYS_TOPIC]) if r.key]
    return {key if "/" in key else f"{DLQ_TOPIC}/{key}" for key in keys}


async def replay(
    bootstrap: str,
    topics: list[str],
    reason: str,
    since: datetime | None,
    dry_run: bool,
    erased: Callable[[Letter], bool] = lambda letter: False,
) -> Replay:
    """Replay matching letters of `topics` not replayed before, into their input topics;
    letters `erased` says are of an erased session or person are skipped."""
    done = await done_refs(bootstrap)
    chosen = select(letters_of(await read_all(bootstrap, topics)), reason, since)
    result = Replay()
    todo = []
    for letter in chosen:
        if erased(letter):
            result.erased += 1
        elif letter.ref in done:
            result.already += 1
        elif letter.target is None:
            result.refused.append(letter)
        else:
            todo.append(letter)
    result.replayed = len(todo)
    if not dry_run and todo:
        await _send(bootstrap, todo)
    return result


async def _send(bootstrap: str, letters: list[Letter]) -> None:
    """Each letter back to its input topic, then its replay record."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", max_request_size=16 * 1024 * 1024
    )
    await producer.start()
    try:
        for letter in letters:
            target = letter.target
            assert target is not None
            headers = [
                (k, v) for k, v in letter.raw_headers if not k.startswith(OWN_HEADER_PREFIXES)
            ]
            headers.append((REPLAY_REF_HEADER, letter.ref.encode()))
            await producer.send_and_wait(target, letter.value, key=letter.key, headers=headers)
            record = {"replayed_at": time.time(), "reason": letter.reason, "topic": target}
            await producer.send_and_wait(
                REPLAYS_TOPIC, msgspec.json.encode(record), key=letter.ref.encode()
            )
    finally:
        await producer.stop()


def run_list(
    bootstrap: str,
    topics: list[str],
    reason: str | None,
    since: datetime | None,
    erased: Callable[[Letter], bool] = lambda letter: False,
) -> list[str]:
    """The summary of the matching letters, those of erased sessions or persons skipped
    (and counted on the last line)."""
    chosen = select(letters_of(asyncio.run(read_all(bootstrap, topics))), reason, since)
    kept = [letter for letter in chosen if not erased(letter)]
    skipped = f"{len(chosen) - len(kept)} skipped: of an erased session or person"
    return [*summary(kept), skipped]
