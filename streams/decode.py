"""Decode a batch's pieces into the JSON text of its rrweb events. Pure functions.

The payload is base64(gzip(JSON array)) cut into pieces at any character, or the JSON
text itself. Pieces are decoded one at a time, base64 carried over piece boundaries,
and inflated as they come, so a complete set is never joined into one more copy of all
its pieces. Decompression is bounded: a gzip bomb is `oversized`, not an out-of-memory
kill. A gzip stream may hold several members back to back (browsers and proxies write
them); every member is inflated, in order.
"""

from __future__ import annotations

import binascii
from collections.abc import Iterable
from typing import Any, cast

import pybase64
from isal import isal_zlib

from streams.dlq import Rejected

_GZIP_WBITS = 16 + isal_zlib.MAX_WBITS
_GzipError = cast(type[Exception], isal_zlib.error)
GZIP_MAGIC = b"\x1f\x8b"  # how every gzip stream (member) begins


class BoundedGunzip:
    """Inflates gzip members fed in any slices; refuses output past `max_bytes`."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.out = bytearray()
        self._inflater: Any = isal_zlib.decompressobj(_GZIP_WBITS)
        self._started = False

    def feed(self, data: bytes) -> None:
        while data:
            if self._inflater.eof:  # the previous member ended: the next one starts
                if not data.startswith(GZIP_MAGIC[: len(data)]):
                    if data.strip(b"\x00"):
                        raise Rejected("invalid_gzip", "decode", "data after the gzip stream")
                    return  # zero padding after the last member, as gzip(1) accepts
                self._inflater = isal_zlib.decompressobj(_GZIP_WBITS)
            self._started = True
            room = self.max_bytes - len(self.out) + 1
            try:
                chunk = self._inflater.decompress(data, room)
            except _GzipError as exc:
                raise Rejected("invalid_gzip", "decode", str(exc)) from None
            self.out += chunk
            if len(self.out) > self.max_bytes or self._inflater.unconsumed_tail:
                raise Rejected("oversized", "decode", f"inflates beyond {self.max_bytes} bytes")
            data = self._inflater.unused_data if self._inflater.eof else b""

    def result(self) -> bytes:
        if not self._started or not self._inflater.eof:
            raise Rejected("invalid_gzip", "decode", "truncated gzip stream")
        return bytes(self.out)


def gunzip(data: bytes, max_bytes: int) -> bytes:
    """All gzip members of `data`, inflated to at most `max_bytes` bytes."""
    inflater = BoundedGunzip(max_bytes)
    inflater.feed(data)
    return inflater.result()


def _b64(text: str) -> bytes:
    try:
        return pybase64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise Rejected("invalid_base64", "decode", str(exc)) from None


def decode_pieces(datas: Iterable[str], compression: str, max_bytes: int) -> bytes:
    """The JSON text of a batch of rrweb events, from its pieces' `data` in index order."""
    if compression == "none":
        out = bytearray()
        for data in datas:
            out += data.encode("utf-8", "surrogatepass")
            if len(out) > max_bytes:
                raise Rejected("oversized", "decode", f"payload passes {max_bytes} bytes")
        return bytes(out)
    inflater = BoundedGunzip(max_bytes)
    carry = ""
    for data in datas:
        start = 0
        if carry:  # complete the quad the previous piece left open
            start = min(len(data), 4 - len(carry))
            carry += data[:start]
            if len(carry) < 4:
                continue
            inflater.feed(_b64(carry))
        end = start + (len(data) - start) // 4 * 4
        inflater.feed(_b64(data[start:end]))
        carry = data[end:]
    if carry:
        raise Rejected("invalid_base64", "decode", "base64 text is not a whole number of quads")
    return inflater.result()


def decode_payload(data: str, compression: str, max_bytes: int) -> bytes:
    """The JSON text of a batch of rrweb events, from the joined `data` of its pieces."""
    return decode_pieces((data,), compression, max_bytes)
