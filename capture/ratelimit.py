"""Per-token rate limit: a token bucket per capture token. Pure (the clock is passed in).

Buckets exist only for tokens of the team registry (an unknown token is refused before
it gets one), so the table is bounded by the number of teams, whatever a client sends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass
class TokenBuckets:
    """`burst` requests at once per key, refilled at `rate` per second."""

    rate: float
    burst: int
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def take(self, key: str, now: float) -> float:
        """Take one request's worth for `key`: 0.0 if allowed, else the seconds until one
        is available again (the Retry-After to answer)."""
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(float(self.burst), now)
        elapsed = max(0.0, now - bucket.updated)
        bucket.tokens = min(float(self.burst), bucket.tokens + elapsed * self.rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> int:
    """Whole seconds for a Retry-After header: at least 1, never early."""
    return max(1, math.ceil(seconds))
