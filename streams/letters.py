"""What a dead letter says about itself, read as data from outside: its dlq-* headers
(why it was refused, where it came from) and the moments a message names, all bounded.

The DLQ writer (streams.dlq) appends its own dlq-* headers after the original ones,
from which it drops any `dlq-` header, so the last of each is the writer's. Anything a
header or a time field holds may be junk: what is not what it claims reads as None
(or -1 for a partition or offset), never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple

import msgspec

from sinks.ids import is_safe_id
from streams.dlq import REASONS
from streams.output import Message
from streams.parse import TimeBounds

OTHER = "other"  # the metrics label of a letter that names no known reason
MAX_HEADER_CHARS = 256  # reasons, stages, ids and times are far shorter
MAX_TOPIC_CHARS = 249  # Kafka's limit on a topic name
_moment = msgspec.json.Decoder(int | float | str | None)


class LetterHeaders(NamedTuple):
    """What a letter's dlq-* headers say (the last of each: the DLQ writer appends its own
    after the original headers, which never keep a `dlq-` one)."""

    reason: str
    stage: str
    source_topic: str
    source_partition: int
    source_offset: int


def letter_of(message: Message) -> LetterHeaders | None:
    """The letter's dlq-* headers; None unless they name a known reason and a stage."""
    reason = header_text(last_header(message.headers, "dlq-reason"))
    stage = header_text(last_header(message.headers, "dlq-stage"))
    if reason is None or reason not in REASONS or stage is None or not is_safe_id(stage):
        return None
    topic = header_text(last_header(message.headers, "dlq-source-topic"), MAX_TOPIC_CHARS) or ""
    partition = _count(last_header(message.headers, "dlq-source-partition"), 2**31)
    offset = _count(last_header(message.headers, "dlq-source-offset"), 2**63)
    return LetterHeaders(reason, stage, topic, partition, offset)


def reason_label(message: Message) -> str:
    """The letter's reason as a metrics label: a known one, else OTHER (bounded)."""
    reason = header_text(last_header(message.headers, "dlq-reason"))
    return reason if reason is not None and reason in REASONS else OTHER


def moment_of(
    candidates: Iterable[object], record_seconds: float | None, bounds: TimeBounds, now_ms: float
) -> int:
    """The first plausible candidate (epoch ms), else the record's time (else now),
    clamped into the plausible range (and after 1970, for ClickHouse)."""
    low, high = max(0.0, now_ms - bounds.past_ms), now_ms + bounds.future_ms
    for candidate in candidates:
        ms = moment_ms(candidate)
        if ms is not None and low <= ms <= high:
            return int(ms)
    record = now_ms if record_seconds is None else record_seconds * 1000
    fallback = record if math.isfinite(record) else now_ms
    return int(min(max(fallback, low), high))


def moment_ms(value: object) -> float | None:
    """Epoch ms of a JSON value (raw), a header or a text: a number of milliseconds, or
    an ISO-8601 time (UTC unless it says otherwise); None for anything else."""
    if isinstance(value, msgspec.Raw):
        try:
            value = _moment.decode(value)
        except (msgspec.MsgspecError, RecursionError):
            return None
    if isinstance(value, bytes):
        value = header_text(value)
    if isinstance(value, str):
        value = _parse_time(value) if len(value) <= MAX_HEADER_CHARS else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        ms = float(value)
    except OverflowError:  # an integer past any float
        return None
    return ms if math.isfinite(ms) else None


def _parse_time(text: str) -> float | None:
    text = text.strip()
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        return moment.timestamp() * 1000
    except (ValueError, OverflowError):
        return None


def last_header(headers: Iterable[tuple[str, bytes | None]], name: str) -> bytes | None:
    """The last header called `name`: of the dlq-* ones, the DLQ writer's own."""
    found = None
    for key, value in headers:
        if key == name:
            found = value
    return found


def header_text(value: bytes | None, limit: int = MAX_HEADER_CHARS) -> str | None:
    """A header's text, if it is UTF-8 and short enough to be what it claims."""
    if not isinstance(value, bytes) or len(value) > limit:
        return None
    try:
        return value.decode()
    except UnicodeDecodeError:
        return None


def _count(value: bytes | None, bound: int) -> int:
    """A partition or offset header: a decimal in [0, bound), else -1."""
    text = header_text(value, 20)
    if text is None or not (text.isascii() and text.isdigit()):
        return -1
    number = int(text)
    return number if number < bound else -1
