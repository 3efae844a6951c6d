"""HTTP views on the worker's web server: these routes and nothing else (Faust's own
table and router views are off, see streams.app).

* ``GET /api/teams/{team_id}/sessions?since=&until=&limit=`` and
  ``GET /api/teams/{team_id}/sessions/{session_id}``: the session summary, for the team
  whose ``read_key`` (team registry) comes as ``Authorization: Bearer <read_key>``.
  A wrong or missing key, or a team without one, is 401 (the team's existence is not
  revealed); malformed parameters are 400; an unknown session is 404 (api.sessions).
  The one summary also opens with a share link's ``?token=`` instead of the key (a
  token refused is 403; api.team.SharedSessionView).
* ``GET|POST /api/teams/{team_id}/sessions/{session_id}/share?expires=DURATION``: a
  signed share link to the session's player page (``{"url", "token", "expires_at"}``),
  for the read key only; DURATION like 90s, 15m, 12h, 7d, 2w (at most 365 days),
  default REPLAY_SHARE_EXPIRES_SECONDS; the tokens are signed with REPLAY_SHARE_KEY,
  else the key generated into the data directory (api.share).
* ``GET /api/teams/{team_id}/sessions/{session_id}/snapshots``: the session's events as
  JSON lines, from ClickHouse or, once archived, from S3 (same read key): a persistent,
  shareable URL whatever tier the session is in. The body is streamed (chunked), so a
  session of any size costs the worker a bounded amount of memory (api.snapshots).
* ``GET /api/teams/{team_id}/sessions/{session_id}/network``: the session's performance
  entries (resources, navigation, paint, LCP...) in time order (same read key).
* ``DELETE /api/teams/{team_id}/sessions/{session_id}``, ``POST /api/teams/{team_id}/
  deletions`` and ``GET /api/teams/{team_id}/deletions/{deletion_id}``: erasure, for the
  team's ``write_key`` (a read key is 403): requests recorded, then carried out by the
  leader; the proof once done (api.erasure). Every read of an erased session (summary,
  snapshots, network, share, player) is 410 from the moment its request is recorded.
* ``POST /api/sql`` (body: one statement): exists because chDB allows one process per
  data directory, so while the worker runs on the embedded chDB, `replay-ingest sql`
  reaches the data through it. Only served for chDB (a ClickHouse server is queried
  directly), only with ``Authorization: Bearer <admin key>`` (REPLAY_ADMIN_KEY, else the
  key generated into the data directory), and only what the SQL guard (sinks.sql_guard)
  lets through: 403 for a refused statement, 400 for one that fails, 413 for a long one
  (api.sql).

A failure of ClickHouse or S3 is 503 with a short message; no route answers 500.
"""

from __future__ import annotations

import logging
from typing import Any

import faust
from faust.web import View

from api.erasure import DeletionsView, DeletionView
from api.player_data import EventsView, LiveSettings, LiveView, ManifestView, PlayerApi
from api.player_page import PlayerAssetView, PlayerPageView
from api.reader import Reader, ThreadReader
from api.sessions import NetworkView, SessionsView, SessionView, ShareView
from api.snapshots import SnapshotsView
from api.sql import SqlApi, SqlView
from config.settings import Settings, ensure_admin_key, ensure_share_key
from config.teams import TeamRegistry
from sinks.s3 import ObjectStore

log = logging.getLogger(__name__)

TEAM_ROUTES: dict[str, type[View]] = {
    "/api/teams/{team_id}/sessions": SessionsView,
    "/api/teams/{team_id}/sessions/{session_id}": SessionView,
    "/api/teams/{team_id}/sessions/{session_id}/network": NetworkView,
    "/api/teams/{team_id}/sessions/{session_id}/snapshots": SnapshotsView,
    "/api/teams/{team_id}/sessions/{session_id}/share": ShareView,
    "/api/teams/{team_id}/sessions/{session_id}/player": ManifestView,
    "/api/teams/{team_id}/sessions/{session_id}/events": EventsView,
    "/api/teams/{team_id}/sessions/{session_id}/live": LiveView,
    "/api/teams/{team_id}/deletions": DeletionsView,
    "/api/teams/{team_id}/deletions/{deletion_id}": DeletionView,
    # before the page's route, which its path would match too
    "/replay/assets/{name}": PlayerAssetView,
    "/replay/{team_id}/{session_id}": PlayerPageView,
}


def define_views(app: faust.App, settings: Settings, registry: TeamRegistry) -> None:
    """Add the routes to `app`, each view bound to the clients it shares with the others."""
    team_api = PlayerApi(
        registry,
        Reader(settings.clickhouse_url),
        ThreadReader(settings.clickhouse_url),
        ObjectStore(settings.s3_url, settings.s3_endpoint_url),
        share_key=ensure_share_key(settings).encode(),
        base_url=settings.base_url,
        share_expires_seconds=settings.share_expires_seconds,
        player_dir=settings.player_dir,
        live=LiveSettings(
            settings.live_window_seconds, settings.live_poll_seconds, settings.max_live_streams
        ),
    )
    for path, view in TEAM_ROUTES.items():
        app.page(path)(_bound(view, team_api))
    if settings.chdb_path is not None:
        admin_key = ensure_admin_key(settings).encode()
        log.info(
            "POST /api/sql takes the admin key (REPLAY_ADMIN_KEY or %s)", settings.admin_key_path
        )
        sql_api = SqlApi(
            admin_key,
            Reader(settings.clickhouse_url),
            settings.sql_limits,
            settings.sql_max_query_bytes,
        )
        app.page("/api/sql")(_bound(SqlView, sql_api))


def _bound(view: type[View], api: Any) -> type[View]:
    """A subclass of `view` for this app, holding `api`: Faust makes a view from its
    class alone, and names and routes the class it is given."""
    return type(view.__name__, (view,), {"api": api})
