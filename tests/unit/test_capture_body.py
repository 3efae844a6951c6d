"""Request bodies in every encoding posthog-js and plain rrweb use, decoded to the JSON
they carry; bombs and oversize bodies are 413, malformed ones 400."""

from __future__ import annotations

import gzip
import json
import urllib.parse

import pybase64
import pytest

from capture.body import FORM_TYPE, decode_body
from capture.refusal import BAD_BODY, TOO_LARGE, Refused
from capture.shapes import parse_posthog
from tests.capture_server import ENCODINGS, encoded, rrweb_events, snapshot_event

LIMIT = 1_000_000
PAYLOAD = [snapshot_event(rrweb_events(5))]


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_every_posthog_encoding_decodes_to_the_json(encoding: str) -> None:
    body, headers, query = encoded(PAYLOAD, encoding)
    compression = urllib.parse.parse_qs(query.lstrip("?")).get("compression", [""])[0]
    decoded = decode_body(body, headers["Content-Type"], compression, LIMIT)
    assert json.loads(decoded) == PAYLOAD


def test_gzip_is_known_by_its_bytes_whatever_the_content_type_says() -> None:
    text = json.dumps(PAYLOAD).encode()
    assert decode_body(text, FORM_TYPE, "", LIMIT) == text  # urllib's default type
    assert decode_body(gzip.compress(text), "application/json", "", LIMIT) == text
    assert decode_body(gzip.compress(text), "text/plain", "gzip-js", LIMIT) == text


def test_a_form_with_unescaped_plus_and_gzipped_data_decodes() -> None:
    text = json.dumps([">>>???" * 50]).encode()
    plain = pybase64.b64encode(text)
    assert b"+" in plain and b"/" in plain
    assert decode_body(b"data=" + plain, FORM_TYPE, "", LIMIT) == text
    zipped = pybase64.b64encode(gzip.compress(text))
    assert decode_body(b"ver=1&data=" + zipped, "text/plain", "base64", LIMIT) == text


def test_a_gzip_bomb_is_too_large_not_a_memory_spike() -> None:
    bomb = gzip.compress(b"\0" * (8 * LIMIT))
    assert len(bomb) < LIMIT // 50
    with pytest.raises(Refused) as refused:
        decode_body(bomb, "text/plain", "", LIMIT)
    assert (refused.value.reason, refused.value.status) == (TOO_LARGE, 413)


def test_bodies_over_the_decoded_limit_are_413_in_every_encoding() -> None:
    text = json.dumps(["x" * LIMIT]).encode()
    for encoding in ENCODINGS:
        body, headers, query = encoded(["x" * LIMIT], encoding)
        compression = "base64" if "base64" in query else ""
        with pytest.raises(Refused) as refused:
            decode_body(body, headers["Content-Type"], compression, len(text) - 1)
        assert refused.value.reason == TOO_LARGE, encoding


@pytest.mark.parametrize(
    ("body", "content_type", "compression", "says"),
    [
        (b"\x1f\x8bnot really gzip", "text/plain", "", "invalid gzip"),
        (gzip.compress(b"[1]")[:-6], "text/plain", "", "invalid gzip"),
        (b"data=%%%not-base64!", FORM_TYPE, "base64", "not base64"),
        (b"other=1", FORM_TYPE, "base64", "without a data field"),
        (b"other=1", FORM_TYPE, "", "JSON is malformed"),
        (b"[]", "application/json", "lz64", "unsupported compression"),
        (b"[]", "text/plain", "gzip-js", "not gzip"),
    ],
)
def test_malformed_bodies_are_400_with_a_short_reason(
    body: bytes, content_type: str, compression: str, says: str
) -> None:
    with pytest.raises(Refused) as refused:
        parse_posthog(decode_body(body, content_type, compression, LIMIT))
    assert refused.value.reason == BAD_BODY and refused.value.status == 400
    assert says in refused.value.detail and len(refused.value.detail) <= 200
