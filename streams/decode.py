"""Decode a reassembled payload into the JSON text of its rrweb events. Pure functions.

The payload is base64(gzip(JSON array)) or the JSON text itself. Decompression is
bounded: a gzip bomb is `oversized`, not an out-of-memory kill.
"""

from __future__ import annotations

import binascii
from typing import cast

import pybase64
from isal import isal_zlib

from streams.dlq import Rejected

_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
_GzipError = cast(type[Exception], isal_zlib.error)


def gunzip_bounded(compressed: bytes, max_bytes: int) -> bytes:
    """Gunzip at most max_bytes of output; raise Rejected on corrupt or oversized input."""
    inflater = isal_zlib.decompressobj(_GZIP_WBITS)
    try:
        out = inflater.decompress(compressed, max_bytes + 1)
    except _GzipError as exc:
        raise Rejected("invalid_gzip", "decode", str(exc)) from None
    if len(out) > max_bytes or inflater.unconsumed_tail:
        raise Rejected("oversized", "decode", f"payload inflates beyond {max_bytes} bytes")
    if not inflater.eof:
        raise Rejected("invalid_gzip", "decode", "truncated gzip stream")
    return out


def decode_payload(data: str, compression: str, max_bytes: int) -> bytes:
    """The JSON text of a batch of rrweb events, from the joined `data` pieces."""
    if compression == "none":
        payload = data.encode("utf-8", "surrogatepass")
        if len(payload) > max_bytes:
            raise Rejected("oversized", "decode", f"payload of {len(payload)} bytes > {max_bytes}")
        return payload
    try:
        compressed = pybase64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected("invalid_base64", "decode", str(exc)) from None
    return gunzip_bounded(compressed, max_bytes)
