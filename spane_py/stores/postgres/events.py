"""The PostgreSQL store's event history (a mixin of ``PostgresExecutionStore``): the table
``events``, written in batches by the engine's history sink. Statements: sql_events.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from spane_py.records import EventRecord
from spane_py.stores.postgres import params, rows, sql_events
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresEvents(PostgresStoreBase):
    async def add_events(self, records: Sequence[EventRecord]) -> None:
        # A batch holds few executions, each many times: each id is checked once.
        ids = {r.execution_id for r in records}
        valid = {i for i in ids if i is None or params.is_uuid(i)}
        entries = [
            {
                "execution_id": r.execution_id,
                "workflow_id": r.workflow_id,
                "node_id": r.node_id,
                "type": r.type,
                "at": r.at,
                "fields": dict(r.fields),
            }
            for r in records
            if r.execution_id in valid
        ]
        if entries:
            payload = orjson.dumps(entries, default=str).decode()
            await self._execute("writing events", sql_events.ADD_EVENTS, payload)

    async def get_events(
        self,
        *,
        execution_id: str | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        params.check_window(limit)
        if execution_id is not None and not params.is_uuid(execution_id):
            return []
        values = {
            "execution_id": execution_id,
            "types": list(types) if types is not None else None,
            "since": since,
            "until": until,
        }
        query, names = sql_events.get_events(
            **{name: value is not None for name, value in values.items()}
        )
        args = [values[name] for name in names]
        found = await self._fetch("reading events", query, *args, min(limit, params.MAX_BIGINT))
        return [rows.event(r) for r in found]
