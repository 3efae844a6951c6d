"""The capture endpoint's Kafka producer: a request's records, all acknowledged or none.

posthog-js treats only 200 as success, so 200 may only be sent once Kafka acknowledged
every record of the request (acks=all). A broker that is down, unreachable at start or
slower than REPLAY_CAPTURE_PRODUCE_TIMEOUT_SECONDS makes the request a 503 with
Retry-After: posthog-js retries 5xx, and the retried body yields the same uuids.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

import metrics
from capture.records import Record
from capture.refusal import KAFKA_UNAVAILABLE, Refused

log = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 5  # what a 503 asks the client to wait
_RECONNECT_SECONDS = 1.0
_REQUEST_SLACK_BYTES = 64 * 1024  # a produce request's overhead over its one record


class Producer:
    """Connects in the background (and again after a failed start), so the endpoint
    serves, answering 503, while Kafka is not there yet."""

    def __init__(self, bootstrap: str, max_message_bytes: int, timeout: float) -> None:
        self.bootstrap = bootstrap
        self.max_message_bytes = max_message_bytes
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None
        self._connecting: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._connecting = asyncio.get_running_loop().create_task(self._connect())

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._connecting
        if self._producer is not None:
            await self._producer.stop()

    async def _connect(self) -> None:
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                linger_ms=2,
                max_request_size=self.max_message_bytes + _REQUEST_SLACK_BYTES,
                request_timeout_ms=int(self.timeout * 1000),
            )
            try:
                await producer.start()
            except KafkaError as exc:
                log.warning("Kafka not reachable at %s (%s); retrying", self.bootstrap, exc)
                await producer.stop()
                await asyncio.sleep(_RECONNECT_SECONDS)
                continue
            self._producer = producer
            metrics.CAPTURE_KAFKA_CONNECTED.set(1)
            log.info("producing to Kafka at %s", self.bootstrap)
            return

    async def send_all(self, records: Sequence[Record]) -> None:
        """Return once Kafka acknowledged every record; Refused 503 otherwise."""
        if not records:
            return
        if self._producer is None:
            raise _unavailable("Kafka is not connected yet")
        started = time.monotonic()
        try:
            await asyncio.wait_for(self._send(self._producer, records), self.timeout)
        except (TimeoutError, KafkaError) as exc:
            log.warning("produce failed: %s", exc.__class__.__name__)
            metrics.CAPTURE_KAFKA_CONNECTED.set(0)  # until a request is acknowledged again
            raise _unavailable("Kafka did not acknowledge in time") from None
        metrics.CAPTURE_KAFKA_CONNECTED.set(1)
        metrics.CAPTURE_PRODUCE_SECONDS.observe(time.monotonic() - started)
        for record in records:
            metrics.CAPTURE_MESSAGES.labels(record.format).inc()

    @staticmethod
    async def _send(producer: AIOKafkaProducer, records: Sequence[Record]) -> None:
        acks = [
            await producer.send(r.topic, r.value, key=r.key, headers=list(r.headers))
            for r in records
        ]
        await asyncio.gather(*acks)


def _unavailable(detail: str) -> Refused:
    return Refused(KAFKA_UNAVAILABLE, detail, retry_after=RETRY_AFTER_SECONDS)
