"""The in-memory store's dead-letter items (``DlqStore``; a part of
``InMemoryExecutionStore``). Items are written by ``transition`` (memory_executions.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from spane_py.records import DlqRecord
from spane_py.stores.memory_state import MemoryState, check_window, detach_dlq


class MemoryDeadLetters(MemoryState):
    async def list_dlq_items(
        self, *, limit: int = 100, offset: int = 0, include_retried: bool = False
    ) -> list[DlqRecord]:
        check_window(limit=limit, offset=offset)
        items = [i for i in reversed(self._dlq.values()) if include_retried or i.retried_at is None]
        return [detach_dlq(i) for i in items[offset : offset + limit]]

    async def get_dlq_item(self, dlq_id: int) -> DlqRecord | None:
        item = self._dlq.get(dlq_id)
        return None if item is None else detach_dlq(item)

    async def mark_dlq_retried(self, dlq_id: int, at: datetime) -> bool:
        item = self._dlq.get(dlq_id)
        if item is None or item.retried_at is not None:
            return False
        self._dlq[dlq_id] = replace(item, retried_at=at)
        return True

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        doomed = [k for k, i in self._dlq.items() if older_than is None or i.failed_at < older_than]
        for k in doomed:
            del self._dlq[k]
        return len(doomed)

    async def get_dlq_count(self, *, include_retried: bool = False) -> int:
        return sum(1 for i in self._dlq.values() if include_retried or i.retried_at is None)
