"""`replay-ingest dlq list|replay` on a real broker: both DLQs are seen, a replay goes
only to the input topic of a letter's DLQ whatever its headers say, nothing is replayed
twice (old replay records included), and letters cannot drive the terminal."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

from aiokafka import AIOKafkaProducer

from config.teams import Team, TeamRegistry
from replay_ingest.dlq import REPLAY_REF_HEADER, read_all
from replay_ingest.localstack import create_topics
from streams.performance import parse_performance
from streams.topics import (
    CAPTURE_TOPIC,
    DLQ_TOPIC,
    DLQ_TOPICS,
    PERFORMANCE_DLQ_TOPIC,
    PERFORMANCE_TOPIC,
    REPLAYS_TOPIC,
    SUMMARIZE,
    repartition_topic,
)
from tests import builders
from tests.checks import dlq
from tests.stack import PARTITIONS, TEAMS, Stack, wait_until

Headers = list[tuple[str, bytes]]


GARBAGE = "\x1b[2J\x1b]0;owned\x07\u202eevil\x9b31m"  # clear, retitle, bidi, C1 CSI
ESCAPED = "\\u001b[2J\\u001b]0;owned\\u0007\\u202eevil\\u009b31m"


def letter_headers(source: str | None) -> Headers:
    """The worker's dead-letter headers, with a crafted error text."""
    headers = [("dlq-reason", b"unknown_token"), ("dlq-stage", b"parse")]
    headers.append(("dlq-error", GARBAGE.encode()))
    if source is not None:
        headers.append(("dlq-source-topic", source.encode()))
    return [*headers, ("dlq-source-partition", b"0"), ("dlq-source-offset", b"0")]


async def produce_letters(bootstrap: str, topic: str, letters: list[tuple[bytes, Headers]]) -> None:
    """Letters as anyone who can write to a DLQ could write them (partition 0, in order)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        for value, headers in letters:
            await producer.send_and_wait(topic, value, partition=0, headers=headers)
    finally:
        await producer.stop()


def tool_env(stack: Stack) -> dict[str, str]:
    """The environment of an operator's shell next to the stack (no worker needed)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REPLAY_")}
    return env | {"REPLAY_BROKER_URL": stack.broker.url, "REPLAY_DATA_DIR": str(stack.tmp_path)}


def replayed_into(bootstrap: str, topics: list[str]) -> dict[str, list[str]]:
    """Per topic, the refs of the replayed records it holds."""
    found: dict[str, list[str]] = {topic: [] for topic in topics}
    for record in asyncio.run(read_all(bootstrap, topics)):
        refs = [v.decode() for k, v in record.headers if k == REPLAY_REF_HEADER]
        found[record.topic] += refs
    return found


def test_replay_goes_only_to_the_input_topic_of_the_letters_dlq(stack: Stack) -> None:
    bootstrap = stack.broker.bootstrap
    internal = repartition_topic(stack.app_id, SUMMARIZE)
    changelog = f"{stack.app_id}-reassemble-changelog"
    elsewhere = [internal, changelog, PERFORMANCE_TOPIC, *sorted(DLQ_TOPICS)]
    asyncio.run(create_topics(bootstrap, [*elsewhere, REPLAYS_TOPIC], PARTITIONS))
    sources = [CAPTURE_TOPIC, internal, changelog, PERFORMANCE_TOPIC, DLQ_TOPIC, GARBAGE, None]
    letters = [
        (builders.capture(session_id=f"s-{i}"), letter_headers(s)) for i, s in enumerate(sources)
    ]
    asyncio.run(produce_letters(bootstrap, DLQ_TOPIC, letters))
    env = tool_env(stack)

    listing = dlq(env, "list")
    assert f"{len(sources)} dead letter(s)" in listing
    assert not [c for c in listing if not c.isprintable() and c != "\n"], listing
    assert ESCAPED in listing

    dry = dlq(env, "replay", "--reason", "unknown_token", "--dry-run")
    assert "would replay 1 dead letter(s)" in dry and "6 skipped" in dry
    output = dlq(env, "replay", "--reason", "unknown_token")
    assert "replayed 1 dead letter(s)" in output and "6 skipped" in output
    assert f'{DLQ_TOPIC}/0:1: dlq-source-topic "{internal}"' in output
    assert f'{DLQ_TOPIC}/0:6: dlq-source-topic ""' in output
    assert not [c for c in output if not c.isprintable() and c != "\n"], output

    found = replayed_into(bootstrap, [CAPTURE_TOPIC, *elsewhere])
    assert found == {CAPTURE_TOPIC: [f"{DLQ_TOPIC}/0:0"]} | {topic: [] for topic in elsewhere}
    again = dlq(env, "replay", "--reason", "unknown_token")
    assert "replayed 0 dead letter(s)" in again and "1 already replayed" in again
    assert replayed_into(bootstrap, [CAPTURE_TOPIC]) == {CAPTURE_TOPIC: [f"{DLQ_TOPIC}/0:0"]}


def test_old_replay_records_still_mean_the_snapshot_dlq(stack: Stack) -> None:
    """Before both DLQs were read, a replay record's key was `<partition>:<offset>`."""
    bootstrap = stack.broker.bootstrap
    asyncio.run(create_topics(bootstrap, [*sorted(DLQ_TOPICS), PERFORMANCE_TOPIC], PARTITIONS))
    asyncio.run(create_topics(bootstrap, [REPLAYS_TOPIC], 1))
    capture_letter = (builders.capture(), letter_headers(CAPTURE_TOPIC))
    asyncio.run(produce_letters(bootstrap, DLQ_TOPIC, [capture_letter]))
    performance_letter = (builders.performance_report(), letter_headers(PERFORMANCE_TOPIC))
    asyncio.run(produce_letters(bootstrap, PERFORMANCE_DLQ_TOPIC, [performance_letter]))
    old_record = (json.dumps({"topic": CAPTURE_TOPIC}).encode(), [])

    async def write_old_record() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
        await producer.start()
        try:
            await producer.send_and_wait(REPLAYS_TOPIC, old_record[0], key=b"0:0")
        finally:
            await producer.stop()

    asyncio.run(write_old_record())
    output = dlq(tool_env(stack), "replay", "--reason", "unknown_token")
    assert "replayed 1 dead letter(s)" in output and "1 already replayed" in output
    found = replayed_into(bootstrap, [CAPTURE_TOPIC, PERFORMANCE_TOPIC])
    assert found == {CAPTURE_TOPIC: [], PERFORMANCE_TOPIC: [f"{PERFORMANCE_DLQ_TOPIC}/0:0"]}


def test_performance_letters_are_listed_and_replayed_once_after_the_fix(stack: Stack) -> None:
    bootstrap = stack.broker.bootstrap
    asyncio.run(create_topics(bootstrap, [PERFORMANCE_TOPIC], PARTITIONS))
    worker = stack.worker().start()
    orphans = [
        builders.performance_report(token="token-new", team_id=4, pageview_id=f"pv-{i}")
        for i in range(3)
    ]
    stack.produce(orphans, topic=PERFORMANCE_TOPIC)
    stack.consume(PERFORMANCE_DLQ_TOPIC, len(orphans))
    env = worker.env

    listing = dlq(env, "list")
    assert "3 dead letter(s)" in listing
    assert PERFORMANCE_DLQ_TOPIC in listing and "unknown_token" in listing
    assert "0 dead letter(s)" in dlq(env, "list", "--topic", DLQ_TOPIC)
    assert "3 dead letter(s)" in dlq(env, "list", "--topic", PERFORMANCE_DLQ_TOPIC)

    worker.stop()  # the fix: the team joins the registry
    teams = [*TEAMS, {"team_id": 4, "token": "token-new", "recording_enabled": True}]
    Path(env["REPLAY_TEAMS_FILE"]).write_text(json.dumps(teams))
    worker.start()
    first = dlq(env, "replay", "--reason", "unknown_token")
    assert "replayed 3 dead letter(s)" in first and "0 skipped" in first
    second = dlq(env, "replay", "--reason", "unknown_token")
    assert "replayed 0 dead letter(s)" in second and "3 already replayed" in second

    refs = replayed_into(bootstrap, [PERFORMANCE_TOPIC, CAPTURE_TOPIC])
    assert sorted(refs[PERFORMANCE_TOPIC]) == sorted(
        f"{PERFORMANCE_DLQ_TOPIC}/{r.partition}:{r.offset}"
        for r in stack.consume(PERFORMANCE_DLQ_TOPIC, len(orphans))
    )
    assert refs[CAPTURE_TOPIC] == []
    registry = TeamRegistry.of([Team(4, "token-new")])
    expected = sum(len(parse_performance(raw, registry, 10**6)[0]) for raw in orphans)
    query = "SELECT count() FROM performance_events FINAL WHERE team_id = 4"
    wait_until(lambda: worker.scalar(query) == expected, 60, f"{expected} replayed entries")
