"""S3: the cold tier. An archived session is one or more zstd-compressed JSON-lines objects.

Keys are stable and documented (sinks.s3_keys). Uploads stream in bounded memory: the
zstd stream is cut into multipart parts of PART_BYTES, and the object is verified after
upload by its size and its ETag, recomputed locally from the parts' MD5s. Errors are
classified (`classify`): a transient one (connection refused or reset, timeouts, 5xx,
429, SlowDown, RequestTimeout) is retried with capped exponential backoff for up to
`retry_seconds` and then raises S3Unavailable; a permanent one (any other 4xx:
AccessDenied, InvalidArgument, EntityTooLarge, ...; or a client-side configuration
error) is not retried and raises S3Rejected at once. Either way the caller (the spill)
deletes nothing of that session.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aioboto3
import aiohttp
import zstandard
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    IncompleteReadError,
)
from botocore.exceptions import ConnectionError as BotoConnectionError

import metrics

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB except the last
READ_BYTES = 64 * 1024  # compressed bytes decompressed at a time when reading back
T = TypeVar("T")

# 4xx codes that a later attempt can get past: throttling, a slow or expired request
_TRANSIENT_CODES = frozenset(
    {
        "RequestTimeout",
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "TooManyRequests",
        "RequestThrottled",
        "OperationAborted",  # a conflicting operation on the bucket is in progress
        "InternalError",
        "ServiceUnavailable",
    }
)
_MISSING_CODES = frozenset({"404", "NoSuchKey", "NotFound"})


class S3Unavailable(RuntimeError):
    """S3 kept failing transiently for the whole retry budget."""


class S3Rejected(RuntimeError):
    """S3 refused a request for good (a permanent 4xx): retrying the call cannot help."""

    def __init__(self, what: str, code: str, message: str) -> None:
        super().__init__(f"{what} rejected: {code}: {message}")
        self.code = code


def classify(exc: BaseException) -> str:
    """'missing', 'transient' or 'permanent', from the HTTP status and S3 error code."""
    if isinstance(exc, ClientError):
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        if code in _MISSING_CODES:
            return "missing"
        if code in _TRANSIENT_CODES or status in (0, 408, 429) or status >= 500:
            return "transient"
        return "permanent"  # AccessDenied, InvalidArgument, EntityTooLarge, a redirect...
    if isinstance(exc, HTTPClientError | BotoConnectionError | IncompleteReadError):
        return "transient"  # refused, reset, closed, timed out, cut short
    if isinstance(exc, BotoCoreError):
        return "permanent"  # no credentials, invalid parameters: configuration
    return "transient"  # OSError, aiohttp.ClientError, TimeoutError from a stream


def _code(exc: BaseException) -> str:
    if isinstance(exc, ClientError):
        return str(exc.response.get("Error", {}).get("Code", "")) or "ClientError"
    return type(exc).__name__


@dataclass(frozen=True, slots=True)
class Uploaded:
    key: str
    bytes: int
    etag: str
    lines: int
    sha256: str  # of the uncompressed JSON lines


_ERRORS = (BotoCoreError, ClientError, OSError, aiohttp.ClientError, asyncio.TimeoutError)


@dataclass
class ObjectStore:
    """A bucket and prefix on an S3 API (AWS, MinIO, SeaweedFS, moto)."""

    url: str  # s3://bucket/prefix
    endpoint_url: str | None
    retry_seconds: float = 30.0  # budget for retrying one call through transient failures
    retry_max_seconds: float = 10.0  # cap of one backoff delay

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.bucket, self.prefix = parts.hostname or "", parts.path.strip("/")
        self.session = aioboto3.Session()
        self.config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)

    def client(self) -> Any:
        return self.session.client("s3", endpoint_url=self.endpoint_url or None, config=self.config)

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """Run `call`, retrying transient failures with capped backoff within the budget."""
        deadline = asyncio.get_running_loop().time() + self.retry_seconds
        attempt = 0
        while True:
            attempt += 1
            try:
                return await call()
            except _ERRORS as exc:
                kind = classify(exc)
                if kind == "missing":
                    raise
                metrics.S3_FAILURES.labels(what).inc()
                if kind == "permanent":
                    raise S3Rejected(what, _code(exc), str(exc)[:300]) from exc
                delay = min(self.retry_max_seconds, 0.2 * 2 ** min(attempt, 16))
                delay *= random.uniform(0.5, 1)
                if asyncio.get_running_loop().time() + delay > deadline:
                    raise S3Unavailable(
                        f"{what} failed {attempt} times in {self.retry_seconds:.0f}s: {exc}"
                    ) from exc
                log.warning(
                    "S3 %s failed (attempt %d, retry in %.1fs): %s", what, attempt, delay, exc
                )
                await asyncio.sleep(delay)

    async def ensure_bucket(self) -> None:
        async def create() -> None:
            async with self.client() as s3:
                try:
                    await s3.head_bucket(Bucket=self.bucket)
                except ClientError as exc:
                    if classify(exc) != "missing":
                        raise
                    await s3.create_bucket(Bucket=self.bucket)

        await self._retry("create_bucket", create)

    async def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if it does not exist."""

        async def call() -> dict[str, Any] | None:
            async with self.client() as s3:
                try:
                    return dict(await s3.head_object(Bucket=self.bucket, Key=key))
                except ClientError as exc:
                    if classify(exc) == "missing":
                        return None
                    raise

        return await self._retry("head", call)

    async def delete(self, key: str) -> bool:
        """Delete one object (erasure); True if it existed. S3's DeleteObject succeeds
        for a missing key too, so a rerun after a crash converges; the head first says
        whether there was anything, for the proof."""
        if await self.head(key) is None:
            return False

        async def call() -> None:
            async with self.client() as s3:
                await s3.delete_object(Bucket=self.bucket, Key=key)

        await self._retry("delete", call)
        return True

    async def keys(self, prefix: str) -> list[str]:
        """Every key under `prefix` (erasure finds the unindexed objects of a session,
        an upload a crash left, by its key prefix)."""

        async def call() -> list[str]:
            found: list[str] = []
            async with self.client() as s3:
                pages = s3.get_paginator("list_objects_v2").paginate(
                    Bucket=self.bucket, Prefix=prefix
                )
                try:
                    async for page in pages:
                        found.extend(str(o["Key"]) for o in page.get("Contents", []))
                except ClientError as exc:
                    if classify(exc) != "missing" and _code(exc) != "NoSuchBucket":
                        raise
            return found  # no bucket (nothing was ever spilled): no object

        return await self._retry("list", call)

    async def upload_lines(self, key: str, lines: Iterable[bytes]) -> Uploaded:
        """Compress lines into one object, part by part; verify size and ETag after."""
        digest, count = hashlib.sha256(), 0
        compressor = zstandard.ZstdCompressor(level=6).chunker(chunk_size=PART_BYTES)
        md5s: list[bytes] = []
        size = 0

        def chunks() -> Iterable[bytes]:
            nonlocal count
            for line in lines:
                count += 1
                digest.update(line)
                digest.update(b"\n")
                yield from compressor.compress(line + b"\n")
            yield from compressor.finish()

        async with self.client() as s3:
            upload = await self._retry(
                "create_multipart",
                lambda: s3.create_multipart_upload(
                    Bucket=self.bucket, Key=key, ContentType="application/zstd"
                ),
            )
            upload_id, parts = upload["UploadId"], []
            try:
                for number, body in enumerate(chunks(), start=1):
                    md5s.append(hashlib.md5(body).digest())
                    size += len(body)
                    part = await self._retry(
                        "upload_part",
                        functools.partial(
                            s3.upload_part,
                            Bucket=self.bucket,
                            Key=key,
                            UploadId=upload_id,
                            PartNumber=number,
                            Body=body,
                        ),
                    )
                    parts.append({"ETag": part["ETag"], "PartNumber": number})
                await self._retry(
                    "complete_multipart",
                    lambda: s3.complete_multipart_upload(
                        Bucket=self.bucket,
                        Key=key,
                        UploadId=upload_id,
                        MultipartUpload={"Parts": parts},
                    ),
                )
            except BaseException:
                await _abort(s3, self.bucket, key, upload_id)
                raise
        etag = f'"{hashlib.md5(b"".join(md5s)).hexdigest()}-{len(md5s)}"'
        uploaded = Uploaded(key, size, etag, count, digest.hexdigest())
        await self.verify(uploaded)
        metrics.S3_OBJECTS.inc()
        metrics.S3_BYTES.inc(size)
        return uploaded

    async def verify(self, uploaded: Uploaded) -> None:
        """The object is there with the size and ETag we sent, else S3Rejected."""
        head = await self.head(uploaded.key)
        if head is None:
            raise S3Rejected("verify", "NotVerified", f"{uploaded.key} is missing after upload")
        if head["ContentLength"] != uploaded.bytes or head["ETag"] != uploaded.etag:
            raise S3Rejected(
                "verify",
                "NotVerified",
                f"{uploaded.key}: {head['ContentLength']} bytes, ETag {head['ETag']}; "
                f"expected {uploaded.bytes} bytes, ETag {uploaded.etag}",
            )

    async def read_lines(self, key: str) -> AsyncGenerator[bytes, None]:
        """The object's JSON lines, decompressed as they stream in, READ_BYTES at a time.

        Memory holds one read's decompressed output and the line it ends in, whatever
        the object's size.
        """
        async with self.client() as s3:
            response = await self._retry("get", lambda: s3.get_object(Bucket=self.bucket, Key=key))
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            pending = bytearray()
            async for chunk in response["Body"].iter_chunks(READ_BYTES):
                pending += decompressor.decompress(chunk)
                end = pending.rfind(b"\n")
                if end < 0:
                    continue
                lines = bytes(pending[:end]).split(b"\n")
                del pending[: end + 1]
                for line in lines:
                    yield line
            if pending:
                yield bytes(pending)


async def _abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:  # the upload is already failing; this is best effort
        log.warning("could not abort multipart upload of %s: %s", key, exc)
