"""Run the stream-processing worker (Faust) until stopped.

It creates the ClickHouse tables first (waiting while ClickHouse is unreachable), then
consumes the input topics, serves /metrics and the web API, and, when it leads, spills
sessions past retention every REPLAY_SPILL_INTERVAL_SECONDS.
"""

from __future__ import annotations

import argparse
import logging
import time

from config.settings import Settings

log = logging.getLogger("replay_ingest")


def configure(parser: argparse.ArgumentParser) -> None:
    """No arguments: the worker is configured by REPLAY_* variables only."""


def handle(settings: Settings, args: argparse.Namespace) -> int:
    import faust

    import metrics
    from config.teams import load_registry
    from replay_ingest.worker import build_worker

    registry = load_registry(settings.teams_file)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    _ensure_schema(settings)
    metrics.serve(settings.metrics_host, settings.metrics_port)
    metrics.WORKER_UP.set(1)
    app = build_worker(settings, registry)
    worker = faust.Worker(app, loglevel=settings.log_level, quiet=True, override_logging=False)
    worker.execute_from_commandline()
    return 0


def _ensure_schema(settings: Settings) -> None:
    """Create the tables, waiting with backoff while ClickHouse is unreachable (a worker
    may start before its database in a deployment)."""
    from sinks.clickhouse.schema import connect, ensure_schema

    delay = 0.5
    while True:
        try:
            client = connect(settings.clickhouse_url)
            ensure_schema(client, settings.performance_ttl_days)
            client.close()
            return
        except Exception as exc:
            log.warning("ClickHouse not ready (%s); retrying in %.1fs", exc, delay)
            time.sleep(delay)
            delay = min(30.0, delay * 2)
