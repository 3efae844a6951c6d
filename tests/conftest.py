"""The tier marks: a test is `unit`, `e2e` or `lint` by the directory it lives in, so
`pytest tests/unit` and `pytest -m e2e` select what they say. The fixtures that start
real parts are the e2e tier's own (tests/e2e/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

TIERS = ("unit", "e2e", "lint")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.path)).parts
        for tier in TIERS:
            if tier in parts:
                item.add_marker(tier)
