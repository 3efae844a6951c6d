"""A Kafka record the capture endpoint writes, and the identity it is given. Pure.

Identities are derived from the request's content, never drawn at random: a client that
retries the same body (posthog-js retries any status but 200, and a 503 leaves some
messages acknowledged) gets the same uuids, and the worker keeps one row per uuid.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass

ITEMS_FORMAT = "items"  # a `$snapshot_items` message (ITEMS_TOPIC)
CHUNKED_FORMAT = "chunked"  # a piece of the chunked `$snapshot` format (CAPTURE_TOPIC)

# The namespace of every uuid capture derives (uuid5): fixed forever, or retries of a
# body sent before an upgrade would stop matching the rows they duplicate.
NAMESPACE = uuid.UUID("5b0c2f1e-8a57-4f55-9a3e-2f7d0c1f6a11")


@dataclass(frozen=True, slots=True)
class Record:
    """One message to produce: its topic, key (the session id), value and headers."""

    topic: str
    key: bytes
    value: bytes
    headers: tuple[tuple[str, bytes], ...]
    format: str

    @property
    def size(self) -> int:
        """What the record weighs against the broker's limit, key and headers included."""
        return len(self.key) + len(self.value) + headers_size(self.headers)


def headers_size(headers: Iterable[tuple[str, bytes]]) -> int:
    return sum(len(name) + len(value) for name, value in headers)


def content_id(*parts: str | bytes) -> str:
    """A digest of `parts` (each length-prefixed, so no two lists of parts collide)."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode() if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "big"))
        digest.update(data)
    return digest.hexdigest()


def derived_uuid(basis: str, *path: str | int) -> str:
    """The uuid of the part at `path` of the content `basis` identifies."""
    return str(uuid.uuid5(NAMESPACE, ":".join([basis, *map(str, path)])))
