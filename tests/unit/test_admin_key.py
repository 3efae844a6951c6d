"""The admin key of /api/sql: generated once into the data directory (private, no
temporary left behind) even by processes starting at once, kept, and overridden by
REPLAY_ADMIN_KEY without being written or shown."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path
from typing import Any

from config.settings import ensure_admin_key, load_settings, read_admin_key


def _racer(environ: dict[str, str], queue: Any) -> None:
    queue.put(ensure_admin_key(load_settings(environ)))


def test_admin_key_is_generated_once_kept_and_overridable(tmp_path: Path) -> None:
    environ = {"REPLAY_DATA_DIR": str(tmp_path / "data")}
    settings = load_settings(environ)
    assert read_admin_key(settings) is None
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    racers = [context.Process(target=_racer, args=(environ, queue)) for _ in range(4)]
    for racer in racers:
        racer.start()
    keys = {queue.get(timeout=60) for _ in racers}
    for racer in racers:
        racer.join(30)
    assert len(keys) == 1  # processes starting at once agree on one key
    key = keys.pop()
    assert ensure_admin_key(settings) == key == read_admin_key(settings)  # kept
    assert stat.S_IMODE(settings.admin_key_path.stat().st_mode) == 0o600
    assert os.listdir(settings.data_dir) == ["admin.key"]  # no temporary left behind
    configured = load_settings(
        {"REPLAY_DATA_DIR": str(tmp_path / "other"), "REPLAY_ADMIN_KEY": "k" * 20}
    )
    assert ensure_admin_key(configured) == "k" * 20
    assert not configured.admin_key_path.exists()
    assert "k" * 20 not in repr(configured)
