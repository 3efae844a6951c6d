"""Who is recorded: the generator's options, and each session's identity and random stream.

Both outputs (capture messages and performance reports) start from the same identities,
so a test can join them by session and window.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from config.teams import DEMO_TEAM_ID, DEMO_TOKEN

PATHS = ("/", "/pricing", "/docs", "/blog", "/login", "/signup", "/app/insights", "/app/replay")


@dataclass(frozen=True, slots=True)
class GenerateOptions:
    """Counts and sizes default to the production figures (see `capture`)."""

    sessions: int
    seed: int = 0
    chunk_size: int = 900_000
    team_id: int = DEMO_TEAM_ID
    token: str = DEMO_TOKEN
    full_size_mean: int = 185_000
    full_size_sd: int = 160_000
    full_count_mean: float = 2
    full_count_sd: float = 4
    incremental_size_mean: int = 14_000
    incremental_size_sd: int = 50_000
    incremental_count_mean: float = 40
    incremental_count_sd: float = 214
    large_full_snapshots: int = 0
    large_full_snapshot_bytes: int = 2_500_000
    wrong_flag_rate: float = 0.05
    start: datetime = datetime(2026, 11, 1, tzinfo=UTC)
    spread: timedelta = timedelta(days=7)  # sessions start uniformly in [start, start + spread)


def lognormal(rng: random.Random, mean: float, sd: float) -> float:
    """A log-normal draw with the given mean and standard deviation (not of the log)."""
    sigma = math.sqrt(math.log(1 + (sd / mean) ** 2))
    return rng.lognormvariate(math.log(mean) - sigma**2 / 2, sigma)


@dataclass(frozen=True, slots=True)
class Identity:
    """One session: its index in the run, start, ids and the URL of each window."""

    index: int
    start_ms: int
    session_id: str
    distinct_id: str
    window_ids: list[str]
    urls: list[str]


def identities(opts: GenerateOptions) -> Iterator[tuple[Identity, random.Random]]:
    """Each session's identity, and the random stream its recording continues from."""
    rng = random.Random(opts.seed)
    start_ms = int(opts.start.timestamp() * 1000)
    for index in range(opts.sessions):
        session_rng = random.Random(rng.getrandbits(64))
        offset = session_rng.randint(0, int(opts.spread.total_seconds() * 1000))
        session_id = str(uuid.UUID(int=session_rng.getrandbits(128), version=4))
        distinct_id = f"user-{session_rng.randint(1, 10**9)}"
        window_ids = [str(uuid.UUID(int=session_rng.getrandbits(128), version=4)) for _ in range(3)]
        urls = [f"https://example.com{session_rng.choice(PATHS)}" for _ in range(3)]
        identity = Identity(index, start_ms + offset, session_id, distinct_id, window_ids, urls)
        yield identity, session_rng
