"""The PostgreSQL store's dead-letter queue (a mixin of ``PostgresExecutionStore``; items
are added by transitions: transitions.py). Statements: sql.py."""

from __future__ import annotations

from datetime import datetime

from spane_py.records import DlqRecord
from spane_py.stores.postgres import params, rows, sql
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresDeadLetters(PostgresStoreBase):
    async def list_dlq_items(
        self, *, limit: int = 100, offset: int = 0, include_retried: bool = False
    ) -> list[DlqRecord]:
        params.check_window(limit, offset)
        found = await self._fetch(
            "listing dead-letter items", sql.LIST_DLQ, include_retried, limit, offset
        )
        return [rows.dlq(r) for r in found]

    async def get_dlq_item(self, dlq_id: int) -> DlqRecord | None:
        if not params.is_bigint(dlq_id):
            return None
        row = await self._fetchrow("reading a dead-letter item", sql.GET_DLQ, dlq_id)
        return rows.dlq(row) if row is not None else None

    async def mark_dlq_retried(self, dlq_id: int, at: datetime) -> bool:
        if not params.is_bigint(dlq_id):
            return False
        return await self._update_one(
            "marking a dead-letter item retried", sql.MARK_DLQ_RETRIED, dlq_id, at
        )

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        status = await self._execute("purging dead-letter items", sql.PURGE_DLQ, older_than)
        return int(status.rsplit(" ", 1)[-1])

    async def get_dlq_count(self, *, include_retried: bool = False) -> int:
        return int(
            await self._fetchval("counting dead-letter items", sql.COUNT_DLQ, include_retried)
        )
