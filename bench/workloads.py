"""The generated workloads every benchmark measures, in one place.

All of them are the generator's (replay_ingest.generate) for the demo team: the seed-003
size distribution cut to a number of sessions or of messages, two named variants for
the harness, and messages replayed round after round with their ids renamed (new rows,
new chunk sets, new sessions each round) for runs longer than the generator is fast.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from typing import Any

from config.teams import DEMO_TEAM_ID, DEMO_TOKEN, Team, TeamRegistry
from replay_ingest.generator.capture import BatchTruth, generate
from replay_ingest.generator.items import ENCODINGS, ItemsOptions, ItemsRecord, generate_items
from replay_ingest.generator.sessions import GenerateOptions
from streams.parse import parse_capture

MAX = 64 * 1024 * 1024  # the largest message or set the benchmarks' stages accept
REGISTRY = TeamRegistry.of([Team(DEMO_TEAM_ID, DEMO_TOKEN)])  # the generator's team
SEED = 3  # seed 003: the size distribution of DESIGN's sample


def session_messages(sessions: int, seed: int = SEED) -> list[bytes]:
    """Every message of `sessions` generated sessions, in order."""
    return [
        m for batch, _ in generate(GenerateOptions(sessions=sessions, seed=seed)) for m in batch
    ]


def first_messages(count: int, seed: int = SEED) -> list[bytes]:
    """The first whole batches of the distribution, at least `count` messages: cheaper
    than generating sessions until enough, as the generator is slow."""
    messages: list[bytes] = []
    for batch, _ in generate(GenerateOptions(sessions=1_000_000, seed=seed)):
        messages += batch
        if len(messages) >= count:
            break
    return messages


WORKLOADS: dict[str, dict[str, Any]] = {
    "seed003": {},
    # fixed-size incremental batches, like seed 003's median (full snapshots left out)
    "incremental14k": {
        "incremental_size_mean": 14_000,
        "incremental_size_sd": 1,
        "incremental_count_mean": 60,
        "incremental_count_sd": 1,
    },
    "full": {  # full-snapshot heavy
        "full_count_mean": 12,
        "full_count_sd": 3,
        "incremental_count_mean": 1,
        "incremental_count_sd": 1,
    },
}


def workload(name: str, target: int) -> tuple[list[bytes], int]:
    """(messages, batches) of a named workload (WORKLOADS), at least `target` messages:
    whole sessions, doubling their number until there are enough."""
    keep: Callable[[BatchTruth], bool] = lambda truth: True  # noqa: E731
    if name == "incremental14k":
        keep = lambda truth: not truth.has_full_snapshot  # noqa: E731
    messages: list[bytes] = []
    batches, sessions = 0, 1
    while len(messages) < target:
        messages, batches = [], 0
        opts = GenerateOptions(sessions=sessions, seed=SEED, **WORKLOADS[name])
        for batch_messages, truth in generate(opts):
            if keep(truth):
                messages += batch_messages
                batches += 1
        sessions *= 2
    return messages, batches


def items_workload(name: str, target: int, cv_rate: float = 0.3) -> list[ItemsRecord]:
    """The same named workload as `$snapshot_items` messages, one per batch, at least
    `target` of them: values plain, gzip and lz4 in turn at random, `cv_rate` of the
    full snapshots and mutations compressed per event (as posthog-js sends them)."""
    keep: Callable[[BatchTruth], bool] = lambda truth: True  # noqa: E731
    if name == "incremental14k":
        keep = lambda truth: not truth.has_full_snapshot  # noqa: E731
    options = ItemsOptions(encodings=ENCODINGS, cv_rate=cv_rate)
    records: list[ItemsRecord] = []
    sessions = 1
    while len(records) < target:
        opts = GenerateOptions(sessions=sessions, seed=SEED, **WORKLOADS[name])
        records = [record for record, truth in generate_items(opts, options) if keep(truth)]
        sessions *= 2
    return records


# --- rewriting ids, so that replayed messages make new rows and new chunk sets ---------

Template = tuple[bytes, tuple[bytes, ...]]  # a message and its session, window, chunk ids


def template_of(raw: bytes) -> Template:
    chunk = parse_capture(raw, REGISTRY, MAX)
    ids = tuple(i.encode() for i in (chunk.session_id, chunk.window_id, chunk.chunk_id) if i)
    assert all(len(i) == 36 for i in ids), "expected the generator's UUID ids"
    return raw, ids


def renamed(old: bytes, prefix: bytes) -> bytes:
    """The id with its head replaced: UUIDs stay distinct by their random tail."""
    return prefix + old[len(prefix) :]


def rewrite(template: Template, prefix: bytes) -> bytes:
    """The message with its ids renamed. A plain byte replace is exact: the ids occur
    only as themselves (the base64 payload has no '-'), and it is cheap on 1 MB pieces."""
    raw, ids = template
    for old in ids:
        raw = raw.replace(old, renamed(old, prefix))
    return raw


def renamed_rounds(templates: list[Template], tag: str) -> Iterator[tuple[str, bytes]]:
    """(chunk id, message) of the templates round after round, the ids renamed with the
    tag and the round number: every round makes new rows, chunk sets and sessions."""
    for round_ in itertools.count():
        prefix = f"{tag}{round_:0{8 - len(tag)}d}".encode()
        for template in templates:
            chunk_id = renamed(template[1][-1], prefix)  # the ids end with the chunk id
            yield chunk_id.decode(), rewrite(template, prefix)


def renamed_sets(messages: list[bytes], count: int, tag: str) -> list[tuple[str, list[bytes]]]:
    """Whole chunk sets, at least `count` messages, renamed `tag...` so they are new rows
    (the pieces of a set are consecutive in a workload)."""
    sets: dict[str, list[bytes]] = {}
    rounds = renamed_rounds([template_of(m) for m in messages], tag)
    for taken, (chunk_id, message) in enumerate(rounds):
        if chunk_id not in sets and taken >= count:
            break
        sets.setdefault(chunk_id, []).append(message)
    return list(sets.items())
