"""Hot-path library choice, by measurement: each stage of the per-message work (envelope
JSON, base64, gunzip, rrweb events JSON) with the standard library and with the
candidates, on the same seed-003 messages, one core.

    python3.11 -m bench.libraries [--messages 1500] [--rounds 3]

Prints microseconds per message (best of the rounds) and the speed-up over the standard
library for each stage. The pipeline uses what wins here: msgspec (typed structs),
pybase64 and python-isal.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import importlib
import json
import time
import zlib
from collections.abc import Callable
from typing import Any

import msgspec
import pybase64
from isal import isal_zlib

from bench.workloads import MAX, REGISTRY, first_messages
from streams.models import Envelope, SnapshotEvent
from streams.parse import parse_capture
from streams.stats import _events_decoder

Stage = dict[str, Callable[[Any], object]]


def _optional(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _fields(events: Any) -> list[tuple[Any, Any, Any]]:
    """What the statistics read of every event, from a generic parse (the typed decoder
    reads these and a few more)."""
    return [(e["type"], e["timestamp"], (e.get("data") or {}).get("source")) for e in events]


def stages() -> dict[str, Stage]:
    """Per stage: the standard library first, then every candidate that is installed."""
    orjson, simdjson, zlib_ng = (_optional(n) for n in ("orjson", "simdjson", "zlib_ng.zlib_ng"))
    envelope = msgspec.json.Decoder(Envelope)
    inner = msgspec.json.Decoder(SnapshotEvent)
    gzip_bits = 16 + zlib.MAX_WBITS
    json_stage: Stage = {
        "json (stdlib)": lambda text: _fields(json.loads(text)),
        "msgspec generic": lambda text: _fields(msgspec.json.decode(text)),
    }
    envelope_stage: Stage = {
        "json (stdlib)": lambda raw: json.loads(json.loads(raw)["data"]),
        "msgspec typed": lambda raw: inner.decode(envelope.decode(raw).data),
    }
    if orjson is not None:
        json_stage["orjson"] = lambda text: _fields(orjson.loads(text))
        envelope_stage["orjson"] = lambda raw: orjson.loads(orjson.loads(raw)["data"])
    if simdjson is not None:
        parser = simdjson.Parser()
        json_stage["pysimdjson"] = lambda text: _fields(parser.parse(text))
    json_stage["msgspec typed (pipeline)"] = _events_decoder.decode
    gunzip: Stage = {
        "zlib (stdlib)": lambda data: zlib.decompress(data, gzip_bits),
        "python-isal": lambda data: isal_zlib.decompress(data, gzip_bits),
    }
    if zlib_ng is not None:
        gunzip["zlib-ng"] = lambda data: zlib_ng.decompress(data, gzip_bits)
    return {
        "envelope + inner JSON": envelope_stage,
        "base64": {
            "base64 (stdlib)": lambda text: binascii.a2b_base64(text),
            "pybase64": lambda text: pybase64.b64decode(text, validate=True),
        },
        "gunzip": gunzip,
        "rrweb events JSON": json_stage,
    }


def inputs(messages: list[bytes]) -> dict[str, list[Any]]:
    """What each stage takes, derived from the messages once."""
    chunks = [parse_capture(raw, REGISTRY, MAX) for raw in messages]
    texts = [c.data for c in chunks if c.compression == "gzip-base64" and c.chunk_count == 1]
    compressed = [base64.b64decode(text) for text in texts]
    events = [zlib.decompress(blob, 16 + zlib.MAX_WBITS) for blob in compressed]
    return {
        "envelope + inner JSON": messages,
        "base64": texts,
        "gunzip": compressed,
        "rrweb events JSON": events,
    }


def best_of(work: Callable[[Any], object], items: list[Any], rounds: int) -> float:
    """Seconds per item, best of `rounds` passes."""
    best = float("inf")
    for _ in range(rounds):
        started = time.perf_counter()
        for item in items:
            work(item)
        best = min(best, (time.perf_counter() - started) / len(items))
    return best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=1500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    messages = first_messages(args.messages)
    data = inputs(messages)
    print(f"{len(messages)} seed-003 messages; us per message, best of {args.rounds}")
    for stage, candidates in stages().items():
        items = data[stage]
        baseline = None
        print(f"\n{stage} ({len(items)} inputs, {sum(map(len, items)) / len(items) / 1e3:.0f} KB)")
        for name, work in candidates.items():
            seconds = best_of(work, items, args.rounds)
            baseline = baseline or seconds
            print(f"  {name:<26} {seconds * 1e6:8.1f} us   x{baseline / seconds:5.1f}")


if __name__ == "__main__":
    main()
