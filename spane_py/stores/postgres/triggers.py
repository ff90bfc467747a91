"""The PostgreSQL store's schedules and webhook bindings (a mixin of
``PostgresExecutionStore``). Statements: sql.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import orjson

from spane_py.errors import StatePersistenceError
from spane_py.records import ScheduleRecord, WebhookRecord
from spane_py.stores.postgres import rows, sql
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresTriggers(PostgresStoreBase):
    async def sync_triggers(
        self,
        workflow_id: str,
        schedules: Sequence[ScheduleRecord],
        webhooks: Sequence[WebhookRecord],
    ) -> list[WebhookRecord]:
        schedules_json = orjson.dumps(
            [
                {
                    "schedule_id": s.schedule_id,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "missed": s.missed,
                    "created_at": s.created_at.isoformat(),
                }
                for s in schedules
            ]
        ).decode()
        webhooks_json = orjson.dumps(
            [{"path": w.path, "method": w.method, "secret": w.secret} for w in webhooks]
        ).decode()

        async def run() -> list[WebhookRecord]:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.LOCK_TRIGGERS, self.schema)
                if not await conn.fetchval(sql.WORKFLOW_EXISTS, workflow_id):
                    raise StatePersistenceError(
                        f"workflow {workflow_id!r} is not saved: its triggers cannot be",
                        workflow_id=workflow_id,
                    )
                conflicts = await conn.fetch(sql.WEBHOOK_CONFLICTS, workflow_id, webhooks_json)
                if conflicts:
                    return [rows.webhook(r) for r in conflicts]
                await conn.execute(sql.SYNC_SCHEDULES, workflow_id, schedules_json)
                await conn.execute(sql.SYNC_WEBHOOKS, workflow_id, webhooks_json)
                return []

        return await with_retry(
            run, what="saving a workflow's triggers", retry_for_s=self.options.retry_for_s
        )

    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        found = await self._fetch("listing schedules", sql.LIST_SCHEDULES, workflow_id)
        return [rows.schedule(r) for r in found]

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        row = await self._fetchrow("reading a schedule", sql.GET_SCHEDULE, schedule_id)
        return rows.schedule(row) if row is not None else None

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, *, skip_until: datetime | None = None
    ) -> bool:
        return await self._update_one(
            "pausing or resuming a schedule",
            sql.SET_SCHEDULE_PAUSED,
            schedule_id,
            paused,
            skip_until,
        )

    async def advance_schedule(
        self, schedule_id: str, expected: datetime | None, last_tick: datetime
    ) -> bool:
        return await self._update_one(
            "recording a schedule's tick", sql.ADVANCE_SCHEDULE, schedule_id, expected, last_tick
        )

    async def delete_schedule(self, schedule_id: str) -> bool:
        status = await self._execute("removing a schedule", sql.DELETE_SCHEDULE, schedule_id)
        return status.endswith(" 1")

    async def list_webhooks(self, workflow_id: str | None = None) -> list[WebhookRecord]:
        found = await self._fetch("listing webhooks", sql.LIST_WEBHOOKS, workflow_id)
        return [rows.webhook(r) for r in found]

    async def get_webhook(self, path: str, method: str) -> WebhookRecord | None:
        row = await self._fetchrow("reading a webhook", sql.GET_WEBHOOK, path, method)
        return rows.webhook(row) if row is not None else None
