"""Gaps: the batches of a session known missing, read from the dead letters of the two
recording inputs, so that a player can mark them on the session's timeline.

A dead letter (streams.dlq) holds the original message's bytes untouched, and headers
saying why it was refused (`dlq-reason`, `dlq-stage`) and where it came from
(`dlq-source-*`). :func:`gap_of` turns one into a gap, or None when the letter is not
provably a batch of a team's session:

* the team comes only from the token, through the team registry, and a chunked
  message's team_id, if it claims one, must be that team's (as the worker checks);
  letters refused for their team (unknown_token, team_mismatch, recording_disabled)
  are never attributed, nor is anything to a team whose recording is off;
* session and window ids must be safe ids (sinks.ids); a missing window is what the
  worker stores: the session id for items, none ("") for chunked messages;
* a batch is identified as the worker identifies its row: a piece's chunk_id (so the
  pieces of an expired set make one gap), an items message's uuid or the hash the
  worker uses without one (streams.items.batch_id), so a batch written later, when its
  letter is replayed after a fix, hides its gap (sinks.clickhouse.queries.session_gaps);
* `summarize` letters hold statistics, not batches: never gaps.

An items message the worker could not even read (broken lz4 or gzip, bad JSON) is
attributed from the headers PostHog's capture puts on it (token, session_id, uuid): a
token proves its team there as well as in the value. Without a uuid no later write
could match it, so no gap is recorded.

Reading is bounded as the worker's is: a value over max_message_bytes is not read,
inflation stops at max_decoded_bytes and only the fields needed are decoded. A gap's
moment is the best known one of its batch (items: `timestamp`, then `now`, from the
value, else from the headers; chunked: `now`, then `sent_at`), ISO-8601 or epoch
milliseconds, taken only within the worker's plausible time bounds; failing all, the
letter's own record time, clamped into them (streams.letters). gap_of is pure.

:class:`GapsStage` (stage `gaps`) writes one row per gap to `session_recording_gaps`
through the same loop as every stage (offsets committed once the rows are durable),
and counts the letters that are no gap. Its outbox (:class:`GapsOutbox`) never
dead-letters: it reads the dead-letter topics, so what it fails on is counted and logged.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import NamedTuple

import msgspec

import metrics
from config.teams import Team, TeamRegistry
from sinks.clickhouse.schema import GAPS_COLUMNS
from sinks.ids import is_safe_id
from streams.decoder import Decoder
from streams.dlq import Rejected
from streams.items import batch_id, unwrap
from streams.letters import header_text, letter_of, moment_of, reason_label
from streams.loop import Outbox
from streams.models import CONTENT_ENCODING_HEADER, ITEMS_EVENT, ItemsMessage, SourceRef
from streams.output import Letter, Message, Original, Output, Row
from streams.tombstones import count_dropped
from streams.topics import DLQ_TOPIC, GAPS, ITEMS_DLQ_TOPIC, SUMMARIZE

log = logging.getLogger(__name__)

NEVER_ATTRIBUTED = frozenset({"unknown_token", "team_mismatch", "recording_disabled"})
NO_BATCH_STAGES = frozenset({SUMMARIZE})
_UNREADABLE = (msgspec.MsgspecError, RecursionError, ValueError, Rejected)
_NULL = msgspec.Raw(b"null")


class Gap(NamedTuple):
    """One missing batch of a session: a row of `session_recording_gaps`."""

    team_id: int
    session_id: str
    window_id: str
    chunk_id: str
    timestamp: int  # epoch milliseconds
    reason: str
    stage: str
    source_topic: str
    source_partition: int  # -1: not said
    source_offset: int  # -1: not said

    def values(self) -> tuple[object, ...]:
        """The row's values for GAPS_COLUMNS, taken by name."""
        return tuple(getattr(self, column) for column in GAPS_COLUMNS)

    @property
    def nbytes(self) -> int:
        """About what the row weighs in an insert block (the sink's byte bound)."""
        return 64 + sum(len(value) for value in self if isinstance(value, str))


class _Batch(NamedTuple):
    team: Team
    session_id: str
    window_id: str
    chunk_id: str
    moments: tuple[object, ...]  # best first


# Only the fields a gap needs; the rest of a message is skipped, never built.
class _SnapshotData(msgspec.Struct):
    chunk_id: str


class _SnapshotProperties(msgspec.Struct):
    snapshot_data: _SnapshotData
    dollar_session_id: str | None = msgspec.field(name="$session_id", default=None)
    dollar_window_id: str | None = msgspec.field(name="$window_id", default=None)
    session_id: str | None = None
    window_id: str | None = None


class _Event(msgspec.Struct):
    event: str
    properties: _SnapshotProperties


class _Envelope(msgspec.Struct):
    token: str
    data: str
    team_id: int | None = None
    now: msgspec.Raw = _NULL
    sent_at: msgspec.Raw = _NULL


class _ItemsProperties(msgspec.Struct):
    session_id: str | None = msgspec.field(name="$session_id", default=None)
    window_id: str | None = msgspec.field(name="$window_id", default=None)


class _ItemsEvent(msgspec.Struct):
    event: str
    properties: _ItemsProperties


class _ItemsMessage(msgspec.Struct):
    token: str
    data: str
    uuid: str | None = None
    timestamp: msgspec.Raw = _NULL
    now: msgspec.Raw = _NULL


_envelope = msgspec.json.Decoder(_Envelope)
_event = msgspec.json.Decoder(_Event)
_items_message = msgspec.json.Decoder(_ItemsMessage)
_items_event = msgspec.json.Decoder(_ItemsEvent)


def gap_of(message: Message, decoder: Decoder, now: float) -> Gap | None:
    """The gap a dead letter (read from GAPS_TOPICS) stands for, or None (see above)."""
    letter = letter_of(message)
    if letter is None or letter.reason in NEVER_ATTRIBUTED or letter.stage in NO_BATCH_STAGES:
        return None
    read = _READERS.get(message.topic)
    batch = read(message, decoder) if read is not None else None
    if batch is None:
        return None
    moment = moment_of(batch.moments, message.timestamp, decoder.bounds, now * 1000)
    ids = (batch.team.team_id, batch.session_id, batch.window_id, batch.chunk_id)
    return Gap(*ids, moment, **letter._asdict())


def _chunked(message: Message, decoder: Decoder) -> _Batch | None:
    """A piece of a chunked `$snapshot` batch (session_recording_events)."""
    raw = message.value
    if not raw or len(raw) > decoder.settings.max_message_bytes:
        return None
    try:
        envelope = _envelope.decode(raw)
        event = _event.decode(envelope.data)
    except _UNREADABLE:
        return None
    team = _team(decoder.registry, envelope.token)
    if team is None or envelope.team_id not in (None, team.team_id) or event.event != "$snapshot":
        return None
    props = event.properties
    session = props.dollar_session_id or props.session_id
    window = props.dollar_window_id or props.window_id or ""
    moments = (envelope.now, envelope.sent_at)
    return _batch(team, session, window, props.snapshot_data.chunk_id, moments)


def _items(message: Message, decoder: Decoder) -> _Batch | None:
    """A `$snapshot_items` batch: from its value, else (unreadable) from its headers."""
    read = _items_value(message, decoder)
    if read is None:
        return _items_headers(message, decoder.registry)
    body, event = read
    team = _team(decoder.registry, body.token)
    if team is None or event.event != ITEMS_EVENT:
        return None
    session = event.properties.session_id
    window = event.properties.window_id or session
    try:
        chunk = batch_id(ItemsMessage(token=body.token, data=body.data, uuid=body.uuid))
    except _UNREADABLE:
        return None
    heads = (message.header("timestamp"), message.header("now"))
    return _batch(team, session, window, chunk, (body.timestamp, body.now, *heads))


def _items_value(message: Message, decoder: Decoder) -> tuple[_ItemsMessage, _ItemsEvent] | None:
    settings, raw = decoder.settings, message.value
    if not raw or len(raw) > settings.max_message_bytes:
        return None
    try:
        value = unwrap(raw, message.header(CONTENT_ENCODING_HEADER), settings.max_decoded_bytes)
        body = _items_message.decode(value)
        return body, _items_event.decode(body.data)
    except _UNREADABLE:
        return None


def _items_headers(message: Message, registry: TeamRegistry) -> _Batch | None:
    token, session = header_text(message.header("token")), header_text(message.header("session_id"))
    team = _team(registry, token) if token is not None else None
    if team is None:
        return None
    moments = (message.header("timestamp"), message.header("now"))
    return _batch(team, session, session, header_text(message.header("uuid")), moments)


def _batch(
    team: Team,
    session: str | None,
    window: str | None,
    chunk: str | None,
    moments: tuple[object, ...],
) -> _Batch | None:
    """The batch, if its ids are safe (a window may be empty: none was sent)."""
    if session is None or window is None or chunk is None:
        return None
    if not (is_safe_id(session) and is_safe_id(chunk) and (window == "" or is_safe_id(window))):
        return None
    return _Batch(team, session, window, chunk, moments)


def _team(registry: TeamRegistry, token: str) -> Team | None:
    """The token's team, if it records."""
    team = registry.team_for_token(token)
    return team if team is not None and team.recording_enabled else None


_READERS: dict[str, Callable[[Message, Decoder], _Batch | None]] = {
    DLQ_TOPIC: _chunked,
    ITEMS_DLQ_TOPIC: _items,
}


@dataclass
class GapsStage:
    """Stage `gaps` (reads GAPS_TOPICS): a row for each letter that is a gap, a count
    for each that is not."""

    decoder: Decoder
    name: str = GAPS

    def handle(self, message: Message, now: float) -> Output:
        gap = gap_of(message, self.decoder, now)
        if gap is None:
            metrics.GAPS_UNATTRIBUTED.labels(reason_label(message)).inc()
            return Output()
        if self.decoder.tombstones.current.session_erased(gap.team_id, gap.session_id):
            count_dropped(self.name)  # a gap of an erased session is erased too
            return Output()
        metrics.GAPS_RECORDED.labels(gap.reason).inc()
        where = Original(None, None, SourceRef(message.topic, message.partition, message.offset))
        return Output(rows=[Row(gap.values(), gap.nbytes, (where,))])


@dataclass
class GapsOutbox(Outbox):
    """The gaps agent's outbox, which has no dead-letter topic: the topics it could send
    a letter to are the ones its agent reads, where a letter the stage fails on would
    come back to fail again. What the loop would dead-letter (an internal_error, an
    unwritable_row) is counted and logged instead; the take is acknowledged as usual."""

    async def dead_letter(self, letter: Letter) -> None:
        original, rejection = letter
        metrics.GAPS_FAILED.labels(rejection.reason).inc()
        source = original.source
        log.warning(
            "no gap recorded for the letter at %s/%s/%s: %s: %s",
            source.topic,
            source.partition,
            source.offset,
            rejection.reason,
            rejection.error,
        )
