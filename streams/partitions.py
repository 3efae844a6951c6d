"""Per-partition in-memory indexes over a changelog-backed table, built lazily.

PendingChunks and SessionWindows keep, per partition, an index of what they hold so
that periodic work costs what is due. The index is derived state: it is built from the
store by one full pass on first use, and dropped after a rebalance (the partitions held,
and so the table's contents, change), to be built again on next use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class PerPartition(Generic[T]):
    """One index per partition, built by `build(partition)` when first asked for."""

    def __init__(self, build: Callable[[int], T]) -> None:
        self._build = build
        self._indexes: dict[int, T] = {}

    def __call__(self, partition: int) -> T:
        index = self._indexes.get(partition)
        if index is None:
            index = self._indexes[partition] = self._build(partition)
        return index

    def built(self) -> list[T]:
        return list(self._indexes.values())

    def clear(self) -> None:
        """Forget every index (after a rebalance): rebuilt from the store on use."""
        self._indexes.clear()
