"""A request body as sent, turned into the JSON text it carries. Pure functions.

posthog-js sends a body three ways (DESIGN): gzip (`text/plain`, raw gzip bytes, no
query parameter: recognised by its magic bytes), a form `data=<base64 of the JSON>`
(`?compression=base64`, also what sendBeacon on unload uses) or plain JSON; the plain
rrweb intake takes gzip or JSON. A form content type alone does not make a body a form
(clients such as urllib send it by default): it needs its `data=` field. Decompression
is bounded, so a gzip bomb is refused (413) after at most `max_decoded` bytes of
output, never an out-of-memory kill.
"""

from __future__ import annotations

import binascii
from urllib.parse import unquote_to_bytes

import pybase64

from capture.refusal import TOO_LARGE, Refused, bad
from streams.decode import GZIP_MAGIC
from streams.decode import gunzip as inflate
from streams.dlq import Rejected

FORM_TYPE = "application/x-www-form-urlencoded"
# `compression` values that name what the body itself shows (gzip by its magic bytes)
_PLAIN_OR_GZIP = frozenset({"", "none", "gzip", "gzip-js"})


def decode_body(raw: bytes, content_type: str, compression: str, max_decoded: int) -> bytes:
    """The JSON text of `raw`; Refused 413 past `max_decoded` bytes, 400 if malformed."""
    if raw.startswith(GZIP_MAGIC):
        return gunzip(raw, max_decoded)
    if compression == "base64" or (content_type == FORM_TYPE and b"data=" in raw[:4096]):
        return _from_form(raw, max_decoded)
    if compression not in _PLAIN_OR_GZIP:
        raise bad(f"unsupported compression {compression[:40]!r}")
    if compression in ("gzip", "gzip-js"):
        raise bad("compression says gzip but the body is not gzip")
    return _bounded(raw, max_decoded)


def gunzip(raw: bytes, max_decoded: int) -> bytes:
    """All gzip members of `raw`, inflated to at most `max_decoded` bytes."""
    try:
        return inflate(raw, max_decoded)
    except Rejected as exc:
        if exc.reason == "oversized":
            raise Refused(TOO_LARGE, f"body inflates beyond {max_decoded} bytes") from None
        raise bad(f"invalid gzip body: {exc.error}") from None


def _from_form(raw: bytes, max_decoded: int) -> bytes:
    """The `data` field of a form body, base64-decoded (and gunzipped if it is gzip).

    `+` is kept as is rather than read as a space: base64 has no spaces, and some
    senders leave its `+` unescaped."""
    field = next((part[5:] for part in raw.split(b"&") if part.startswith(b"data=")), None)
    if field is None:
        raise bad("form body without a data field")
    try:
        text = unquote_to_bytes(field).strip()
        decoded = pybase64.b64decode(text + b"=" * (-len(text) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise bad("data is not base64") from None
    if decoded.startswith(GZIP_MAGIC):
        return gunzip(decoded, max_decoded)
    return _bounded(decoded, max_decoded)


def _bounded(body: bytes, max_decoded: int) -> bytes:
    if len(body) > max_decoded:
        raise Refused(TOO_LARGE, f"body of {len(body)} bytes > {max_decoded}")
    return body
