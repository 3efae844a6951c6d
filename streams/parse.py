"""Parse, validate and attribute one capture message: bytes in, a normalised Chunk out.

Pure: no Kafka, no I/O. Tenancy is decided here, before the payload is even looked at,
so an unauthorised message costs one envelope parse and never reaches a team's data.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from config.teams import Team, TeamRegistry
from sinks.ids import UnsafeId, check_id
from streams.dlq import Rejected
from streams.models import Chunk, Envelope, SnapshotEvent

MAX_DISTINCT_ID_CHARS = 400
MAX_CHUNK_COUNT = 1024
COMPRESSIONS = frozenset({"gzip-base64", "none"})

_envelope_decoder = msgspec.json.Decoder(Envelope)
_event_decoder = msgspec.json.Decoder(SnapshotEvent)


def decode_strict(decoder: msgspec.json.Decoder, data: bytes | str | None, stage: str) -> object:
    """Decode into a typed struct, or raise Rejected saying why not.

    Nesting is bounded by msgspec itself: past the interpreter's recursion limit
    (1,000 frames by default) it raises RecursionError, refused here as `too_deep`.
    """
    if data is None:
        raise Rejected("invalid_json", stage, "no value (a tombstone)")
    try:
        return decoder.decode(data)
    except msgspec.ValidationError as exc:
        reason = "missing_field" if "missing required field" in str(exc) else "invalid_event"
        raise Rejected(reason, stage, str(exc)) from None
    except msgspec.DecodeError as exc:
        raise Rejected("invalid_json", stage, str(exc)) from None
    except RecursionError:
        raise Rejected("too_deep", stage, "JSON nested too deeply") from None


def valid_id(value: str | None, name: str, *, required: bool) -> str:
    if value is None or value == "":
        if required:
            raise Rejected("missing_field", "validate", f"{name} is missing")
        return ""
    try:
        return check_id(value, name)
    except UnsafeId as exc:
        raise Rejected("invalid_id", "validate", str(exc)) from None


def distinct_id_of(*candidates: str | int | None) -> str:
    for value in candidates:
        if value is not None and value != "":
            text = str(value)
            if len(text) > MAX_DISTINCT_ID_CHARS:
                raise Rejected("invalid_event", "validate", "distinct_id is too long")
            return text
    raise Rejected("missing_field", "validate", "distinct_id is missing")


def check_size(raw: bytes | None, max_bytes: int) -> None:
    if raw is not None and len(raw) > max_bytes:
        raise Rejected("oversized", "parse", f"message of {len(raw)} bytes > {max_bytes}")


def authorize(registry: TeamRegistry, token: str, claimed_team_id: int | None) -> Team:
    """The team that owns the token; a message claiming another team never gets in."""
    team = registry.team_for_token(token)
    if team is None:
        raise Rejected("unknown_token", "authorize", "token is not in the team registry")
    if claimed_team_id is not None and claimed_team_id != team.team_id:
        raise Rejected(
            "team_mismatch",
            "authorize",
            f"team_id {claimed_team_id} does not own the token (team {team.team_id})",
        )
    if not team.recording_enabled:
        raise Rejected("recording_disabled", "authorize", f"team {team.team_id} is disabled")
    return team


def parse_capture(raw: bytes | None, registry: TeamRegistry, max_bytes: int) -> Chunk:
    """Validate a capture message and attribute it to the team of its token."""
    check_size(raw, max_bytes)
    envelope = decode_strict(_envelope_decoder, raw, "parse")
    assert isinstance(envelope, Envelope)
    team = authorize(registry, envelope.token, envelope.team_id)
    event = decode_strict(_event_decoder, envelope.data, "parse")
    assert isinstance(event, SnapshotEvent)
    if event.event != "$snapshot":
        raise Rejected("invalid_event", "validate", f"event {event.event[:80]!r} != '$snapshot'")
    props, snap = event.properties, event.properties.snapshot_data
    if not 1 <= snap.chunk_count <= MAX_CHUNK_COUNT:
        raise Rejected("invalid_chunk", "validate", f"chunk_count {snap.chunk_count} out of range")
    if not 0 <= snap.chunk_index < snap.chunk_count:
        raise Rejected(
            "invalid_chunk",
            "validate",
            f"chunk_index {snap.chunk_index} not in [0, {snap.chunk_count})",
        )
    compression = snap.compression or "none"
    if compression not in COMPRESSIONS:
        raise Rejected("invalid_chunk", "validate", f"unsupported compression {compression[:40]!r}")
    return Chunk(
        team_id=team.team_id,
        session_id=valid_id(
            props.dollar_session_id or props.session_id, "session_id", required=True
        ),
        window_id=valid_id(props.dollar_window_id or props.window_id, "window_id", required=False),
        distinct_id=distinct_id_of(props.distinct_id, envelope.distinct_id),
        chunk_id=valid_id(snap.chunk_id, "chunk_id", required=True),
        chunk_index=snap.chunk_index,
        chunk_count=snap.chunk_count,
        data=snap.data,
        compression=compression,
        producer_full_snapshot=snap.has_full_snapshot,
    )


@dataclass(frozen=True, slots=True)
class TimeBounds:
    """How far from now the event times of a batch (or a performance report) may lie: a
    batch dated in the year 2099 (or 1970) would open windows no clock ever closes, so it
    is refused instead."""

    future_ms: int
    past_ms: int

    def check(self, first_ms: float, last_ms: float, now_ms: float) -> None:
        if last_ms > now_ms + self.future_ms or first_ms < now_ms - self.past_ms:
            raise Rejected(
                "implausible_timestamp",
                "validate",
                f"events at {int(first_ms)}..{int(last_ms)} ms, now {int(now_ms)}",
            )


UNBOUNDED_TIME = TimeBounds(1 << 62, 1 << 62)
