"""What a stage sees and what it produces, as plain values: the message in, and its
rows, forwarded records, dead letters, statistics and after-durability actions out.
The loop (streams.loop) applies an Output; stages (streams.stages) only build them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.dlq import Rejected
from streams.models import BatchStats, SourceRef

TICK_HEADER = "replay-tick"
SOURCE_HEADERS = ("replay-source-topic", "replay-source-partition", "replay-source-offset")


class Message(NamedTuple):
    """One Kafka record as a stage sees it (values may be None: tombstones exist)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    timestamp: float | None = None  # the record's, in seconds (as Faust gives it)

    def header(self, name: str) -> bytes | None:
        return next((value for key, value in self.headers if key == name), None)


class Original(NamedTuple):
    """What a dead letter of a message needs: its bytes, key, headers and source."""

    value: bytes | None
    key: bytes | None
    source: SourceRef
    headers: tuple[tuple[str, bytes | None], ...] = ()


class Letter(NamedTuple):
    original: Original
    rejection: Rejected


class Row(NamedTuple):
    """A sink row, with the original messages to dead-letter if it can never be written."""

    values: tuple[Any, ...]
    nbytes: int
    origin: tuple[Original, ...]


class Forward(NamedTuple):
    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


@dataclass(slots=True)
class Output:
    """Everything handling one message produced."""

    rows: list[Row] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    letters: list[Letter] = field(default_factory=list)
    stats: list[BatchStats] = field(default_factory=list)
    after: list[Callable[[], None]] = field(default_factory=list)  # once durable
    newest_ms: int = 0  # newest rrweb timestamp decoded (event-time lag)

    @classmethod
    def dead(cls, originals: Iterable[Original], rejection: Rejected) -> Output:
        return cls(letters=[Letter(original, rejection) for original in originals])


def original_of(message: Message, *, internal: bool = False) -> Original:
    """The message as a dead letter keeps it. Only on the worker's internal topics do
    `replay-source-*` headers name the source; on an input topic they are forged."""
    source = SourceRef(message.topic, message.partition, message.offset)
    if internal:
        source = _source_from_headers(message) or source
    return Original(message.value, message.key, source, () if internal else message.headers)


def _source_from_headers(message: Message) -> SourceRef | None:
    topic, partition, offset = (message.header(name) for name in SOURCE_HEADERS)
    if topic is None or partition is None or offset is None:
        return None
    try:
        source = SourceRef(topic.decode(), int(partition), int(offset))
    except (ValueError, UnicodeDecodeError):
        return None
    return source if 0 <= source.partition < 2**31 and 0 <= source.offset < 2**63 else None


def source_headers(source: SourceRef) -> list[tuple[str, bytes]]:
    values = (source.topic, str(source.partition), str(source.offset))
    return [(name, value.encode()) for name, value in zip(SOURCE_HEADERS, values, strict=True)]
