"""S3: the cold tier. One zstd-compressed JSON-lines object per archived session.

Keys are stable and documented:

    {prefix}/v1/team_id={team_id}/date={YYYY-MM-DD}/session_id={session_id}.jsonl.zst

(date = the session's start, UTC). Every id is validated here again before it becomes a
key part, whatever the caller checked. Uploads stream in bounded memory: the zstd stream
is cut into multipart parts of PART_BYTES, and the object is verified after upload by
its size and its ETag, recomputed locally from the parts' MD5s. Every call is retried
with capped exponential backoff; a failure that outlasts the retries raises, and the
caller (the spill) then deletes nothing.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import logging
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar
from urllib.parse import urlsplit

import aioboto3
import zstandard
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

import metrics

log = logging.getLogger(__name__)

PART_BYTES = 8 * 1024 * 1024  # S3 parts must be >= 5 MiB except the last
KEY_VERSION = "v1"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,199}")
T = TypeVar("T")


class UnsafeKey(ValueError):
    """An id that cannot become part of an S3 key."""


class S3Unavailable(RuntimeError):
    """S3 kept failing through every retry."""


def session_key(prefix: str, team_id: int, session_id: str, start: datetime) -> str:
    """The stable object key of an archived session."""
    if isinstance(team_id, bool) or not isinstance(team_id, int) or team_id <= 0:
        raise UnsafeKey(f"team_id {team_id!r} is not a positive integer")
    if not _SAFE_ID.fullmatch(session_id):
        raise UnsafeKey(f"session_id {session_id[:80]!r} is not a safe id")
    day = start.astimezone(UTC).strftime("%Y-%m-%d")
    base = f"{prefix.strip('/')}/" if prefix.strip("/") else ""
    return f"{base}{KEY_VERSION}/team_id={team_id}/date={day}/session_id={session_id}.jsonl.zst"


@dataclass(frozen=True, slots=True)
class Uploaded:
    key: str
    bytes: int
    etag: str
    lines: int
    sha256: str  # of the uncompressed JSON lines


@dataclass
class ObjectStore:
    """A bucket and prefix on an S3 API (AWS, MinIO, SeaweedFS, moto)."""

    url: str  # s3://bucket/prefix
    endpoint_url: str | None
    attempts: int = 6
    retry_max_seconds: float = 10.0

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        self.bucket, self.prefix = parts.hostname or "", parts.path.strip("/")
        self.session = aioboto3.Session()
        self.config = Config(retries={"max_attempts": 1}, connect_timeout=5, read_timeout=60)

    def client(self) -> Any:
        return self.session.client("s3", endpoint_url=self.endpoint_url or None, config=self.config)

    async def _retry(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(1, self.attempts + 1):
            try:
                return await call()
            except (BotoCoreError, ClientError, OSError) as exc:
                if _is_missing(exc):
                    raise
                metrics.S3_FAILURES.labels(what).inc()
                if attempt == self.attempts:
                    raise S3Unavailable(f"{what} failed {attempt} times: {exc}") from exc
                delay = min(self.retry_max_seconds, 0.2 * 2**attempt) * random.uniform(0.5, 1)
                log.warning(
                    "S3 %s failed (attempt %d, retry in %.1fs): %s", what, attempt, delay, exc
                )
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def ensure_bucket(self) -> None:
        async def create() -> None:
            async with self.client() as s3:
                try:
                    await s3.head_bucket(Bucket=self.bucket)
                except ClientError:
                    await s3.create_bucket(Bucket=self.bucket)

        await self._retry("create_bucket", create)

    async def head(self, key: str) -> dict[str, Any] | None:
        """The object's metadata, or None if it does not exist."""

        async def call() -> dict[str, Any] | None:
            async with self.client() as s3:
                try:
                    return dict(await s3.head_object(Bucket=self.bucket, Key=key))
                except ClientError as exc:
                    if _is_missing(exc):
                        return None
                    raise

        return await self._retry("head", call)

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
        head = await self.head(uploaded.key)
        if head is None:
            raise S3Unavailable(f"{uploaded.key} is missing right after its upload")
        if head["ContentLength"] != uploaded.bytes or head["ETag"] != uploaded.etag:
            raise S3Unavailable(
                f"{uploaded.key} does not verify: {head['ContentLength']} bytes, ETag "
                f"{head['ETag']}; expected {uploaded.bytes} bytes, ETag {uploaded.etag}"
            )

    async def read_lines(self, key: str) -> AsyncIterator[bytes]:
        """The object's JSON lines, decompressed as they stream in."""
        async with self.client() as s3:
            response = await self._retry("get", lambda: s3.get_object(Bucket=self.bucket, Key=key))
            decompressor = zstandard.ZstdDecompressor().decompressobj()
            pending = b""
            async for chunk in response["Body"].iter_chunks(1024 * 1024):
                pending += decompressor.decompress(chunk)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    yield line
            if pending:
                yield pending


def _is_missing(exc: BaseException) -> bool:
    if not isinstance(exc, ClientError):
        return False
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return code in ("404", "NoSuchKey", "NotFound")


async def _abort(s3: Any, bucket: str, key: str, upload_id: str) -> None:
    try:
        await s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload_id)
    except Exception as exc:  # the upload is already failing; this is best effort
        log.warning("could not abort multipart upload of %s: %s", key, exc)
