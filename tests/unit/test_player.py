"""The player page's pure parts: the page shell escapes what it is given, only the
four asset names resolve, and a live stream sends each batch once in bounded memory."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from api.player_data import LIVE_OVERLAP_MS, Follower
from api.player_page import ASSETS, STATIC_DIR, asset_path, page_html


class _Api:
    player_dir = Path("/nowhere/player")


def test_page_escapes_the_token_and_session() -> None:
    page = page_html(1, 'a"><script>x()</script>', '"><img src=x onerror=y()>', ready=True)
    assert "<script>x()" not in page and "<img src=x" not in page
    assert "&quot;&gt;&lt;img" in page


def test_page_without_assets_says_how_to_get_them() -> None:
    page = page_html(1, "s", "t", ready=False)
    assert "replay-ingest player install" in page
    assert "rrweb-player.js" in page  # named in the hint, not loaded
    assert '<script src="/replay/assets/rrweb-player.js">' not in page


@given(st.text(max_size=60))
def test_only_the_four_asset_names_resolve(name: str) -> None:
    path = asset_path(_Api(), name)  # type: ignore[arg-type]
    if name in ASSETS:
        assert path is not None and path.parent in (_Api.player_dir, STATIC_DIR)
    else:
        assert path is None


def _row(chunk: str, inserted: int, text: str = "x") -> dict[str, Any]:
    events = json.dumps([{"type": 3, "timestamp": inserted, "data": {"text": text}}])
    return {"inserted_ms": inserted, "chunk_id": chunk, "window_id": "w", "snapshot_data": events}


def test_each_batch_is_sent_once_and_as_data_lines() -> None:
    follower = Follower(cursor=0)
    first = follower.messages([_row("a", 10), _row("b", 11)])
    again = follower.messages([_row("a", 10), _row("b", 11), _row("c", 12)])
    assert len(first) == 2 and len(again) == 1 and follower.cursor == 12
    line = first[0].decode()
    assert line.startswith('data: ["w",{') and line.endswith("}]\n\n")


def test_a_batch_with_raw_newlines_stays_one_data_line_per_event() -> None:
    row = _row("a", 10) | {"snapshot_data": '[{"type":3,\n"timestamp":10,\r\n"data":{}}]'}
    (message,) = Follower(cursor=0).messages([row])
    assert message.count(b"\n") == 2  # one data line, then the blank line


def test_what_it_remembers_stays_within_the_overlap() -> None:
    follower = Follower(cursor=0)
    for moment in range(0, 20 * LIVE_OVERLAP_MS, 100):
        follower.messages([_row(f"c{moment}", moment)])
    assert len(follower.sent) <= 2 * LIVE_OVERLAP_MS // 100 + 1
