"""What an id may be: the one pattern, checked at every edge that takes an id.

Session, window and chunk ids become ClickHouse keys and S3 key parts (`.../session_id=
{id}.jsonl.zst`, the parts of a session listed by the prefix up to the dot), so an id has
no separator, no dot, no quote and a bounded length. The ingest (streams.parse), the S3
keys (sinks.s3), the retention job, the HTTP API and the CLI all ask here, so they
cannot disagree on what a valid id is. At the bottom of the project: imports nothing of it.
"""

from __future__ import annotations

import re

MAX_ID_CHARS = 200
ID_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_-]{{0,{MAX_ID_CHARS - 1}}}")


class UnsafeId(ValueError):
    """An id outside ID_PATTERN."""


def is_safe_id(value: object) -> bool:
    """Whether `value` is a string of the id pattern, whole."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


def check_id(value: str, name: str = "id") -> str:
    """`value` if it is a safe id, else UnsafeId naming it (the value cut to 80 chars)."""
    if not is_safe_id(value):
        raise UnsafeId(f"{name} {str(value)[:80]!r} is not a valid id")
    return value
