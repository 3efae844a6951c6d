"""Send JSON lines to a Kafka topic, one message per non-empty line, with a progress
line on stderr.

The topic is created if missing, with REPLAY_PARTITIONS partitions. `replay-ingest
generate` writes capture messages for the capture topic and, with `--performance`,
reports for the performance topic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterator

from config.settings import Settings
from streams.topics import INPUT_TOPICS


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--topic",
        required=True,
        help=f"the topic to write (the input topics: {', '.join(sorted(INPUT_TOPICS))})",
    )
    parser.add_argument(
        "--rate", type=float, default=None, help="messages per second (default: as fast as it can)"
    )
    parser.add_argument(
        "file", nargs="?", default="-", help="JSON lines to send (default: - for stdin)"
    )


def handle(settings: Settings, args: argparse.Namespace) -> int:
    from replay_ingest.localstack import create_topics
    from replay_ingest.produce import produce_lines

    bootstrap = settings.bootstrap

    async def main() -> int:
        await create_topics(bootstrap, [args.topic], settings.partitions)
        return await produce_lines(bootstrap, args.topic, _lines(args.file), rate=args.rate)

    asyncio.run(main())
    return 0


def _lines(source: str) -> Iterator[bytes]:
    stream = sys.stdin.buffer if source == "-" else open(source, "rb")  # noqa: SIM115
    try:
        yield from stream
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
