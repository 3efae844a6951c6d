"""The worker: the stream stages (streams.app), the HTTP API (api), the spill timer
(retention) and the erasure executor (erasure), composed here, at the entry points, so
that streams/ holds the stages and their wiring only."""

from __future__ import annotations

import faust

from api.routes import define_views
from config.settings import Settings
from config.teams import TeamRegistry
from erasure.schedule import define_erasure_timer
from retention.schedule import define_spill_timer
from streams.app import create_app, tombstone_holder


def build_worker(settings: Settings, registry: TeamRegistry) -> faust.App:
    """The Faust app `replay-ingest worker` runs: agents, web views and the spill."""
    tombstones = tombstone_holder(settings)  # also for whatever records erasures
    app = create_app(settings, registry, tombstones)
    define_views(app, settings, registry)
    define_spill_timer(app, settings, registry)
    define_erasure_timer(app, settings)
    return app
