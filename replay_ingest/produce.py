"""Send JSON lines to a Kafka topic, with a progress line on stderr."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterable

from aiokafka import AIOKafkaProducer

MAX_REQUEST_BYTES = 16 * 1024 * 1024


class Progress:
    """A single updating status line, at most a few times a second."""

    def __init__(self, label: str, enabled: bool) -> None:
        self.label, self.enabled = label, enabled
        self.count = self.nbytes = 0
        self.started = self.shown = time.monotonic()

    def add(self, nbytes: int) -> None:
        self.count += 1
        self.nbytes += nbytes
        if self.enabled and time.monotonic() - self.shown > 0.25:
            self.show()

    def show(self, end: str = "") -> None:
        self.shown = time.monotonic()
        rate = self.count / max(1e-9, self.shown - self.started)
        megabytes = self.nbytes / 1e6
        sys.stderr.write(
            f"\r{self.label}: {self.count} messages, {megabytes:.1f} MB, {rate:.0f} msg/s{end}"
        )
        sys.stderr.flush()


async def produce_lines(
    bootstrap: str,
    topic: str,
    lines: Iterable[bytes],
    *,
    rate: float | None = None,
    progress: bool = True,
) -> int:
    """Send each non-empty line as one message (no key); return how many were sent."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        max_request_size=MAX_REQUEST_BYTES,
        linger_ms=5,
        acks="all",
    )
    await producer.start()
    shown = Progress(f"produce {topic}", progress)
    started = time.monotonic()
    try:
        pending = []
        for line in lines:
            value = line.strip()
            if not value:
                continue
            pending.append(await producer.send(topic, value))
            shown.add(len(value))
            if len(pending) >= 1000:
                await asyncio.gather(*pending)
                pending.clear()
            if rate:
                delay = started + shown.count / rate - time.monotonic()
                if delay > 0:
                    await asyncio.gather(*pending)
                    pending.clear()
                    await asyncio.sleep(delay)
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
        if progress:
            shown.show("\n")
    return shown.count
