"""The PostgreSQL store's logs and spans: the trace of an execution (a mixin of
``PostgresExecutionStore``; spans are written by transitions: transitions.py). Statements:
sql.py."""

from __future__ import annotations

from collections.abc import Sequence

import orjson

from spane_py.records import LogRecord, SpanRecord
from spane_py.stores.postgres import params, rows, sql
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresLogs(PostgresStoreBase):
    async def add_log(self, record: LogRecord) -> None:
        await self.add_logs([record])

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        entries = [
            {
                "execution_id": r.execution_id,
                "node_id": r.node_id,
                "level": r.level,
                "message": r.message,
                "fields": dict(r.fields),
                "logged_at": r.timestamp,
            }
            for r in records
            if params.is_uuid(r.execution_id)
        ]
        if not entries:
            return
        payload = orjson.dumps(entries).decode()

        async def run() -> None:
            await self.pool.execute(sql.ADD_LOGS, payload)

        await with_retry(run, what="writing logs", retry_for_s=self.options.retry_for_s)

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading spans", sql.GET_SPANS, execution_id)
        return [rows.span(r) for r in found]

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading logs", sql.GET_LOGS, execution_id, node_id)
        return [rows.log(r) for r in found]
