"""The PostgreSQL store's workflow definitions, versioned (a mixin of
``PostgresExecutionStore``). Statements: sql.py."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from spane_py.definitions.models import WorkflowDefinition
from spane_py.records import SavedWorkflow, WorkflowVersionRecord
from spane_py.stores.postgres import params, rows, sql
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresWorkflows(PostgresStoreBase):
    async def save_workflow(
        self, definition: WorkflowDefinition, *, content_hash: str, change_notes: str | None
    ) -> SavedWorkflow:
        body = orjson.dumps(definition.model_dump(mode="json")).decode()

        async def run() -> SavedWorkflow:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.INSERT_WORKFLOW, definition.id)
                latest = await conn.fetchval(sql.LOCK_NEW_WORKFLOW, definition.id)
                if latest:
                    row = await conn.fetchrow(sql.LOCK_WORKFLOW, definition.id)
                    assert row is not None
                    if row["content_hash"] == content_hash:
                        if not row["active"]:
                            await conn.execute(sql.ACTIVATE, definition.id)
                        existing = await conn.fetchrow(sql.GET_VERSION, definition.id, latest)
                        assert existing is not None
                        return SavedWorkflow(rows.version(existing), created=False)
                version = (latest or 0) + 1
                await conn.execute(
                    sql.INSERT_VERSION,
                    definition.id,
                    version,
                    body,
                    content_hash,
                    change_notes,
                    datetime.now(UTC),
                )
                await conn.execute(sql.SET_LATEST, definition.id, version)
                saved = await conn.fetchrow(sql.GET_VERSION, definition.id, version)
                assert saved is not None
                return SavedWorkflow(rows.version(saved), created=True)

        return await with_retry(run, what="saving a workflow", retry_for_s=self.options.retry_for_s)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowVersionRecord | None:
        if version is None:
            row = await self._fetchrow("reading a workflow", sql.GET_LATEST_VERSION, workflow_id)
        else:
            if not 1 <= version <= 2**31 - 1:
                return None
            row = await self._fetchrow("reading a workflow", sql.GET_VERSION, workflow_id, version)
        return rows.version(row) if row is not None else None

    async def get_workflow_version(self, workflow_id: str) -> int | None:
        value = await self._fetchval("reading a workflow", sql.GET_LATEST_NUMBER, workflow_id)
        return int(value) if value else None

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        params.check_window(limit, offset)
        found = await self._fetch(
            "listing workflows", sql.LIST_WORKFLOWS, active_only, limit, offset
        )
        return [rows.version(r) for r in found]

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        found = await self._fetch("listing workflow versions", sql.LIST_VERSIONS, workflow_id)
        return [rows.version(r) for r in found]

    async def deactivate_workflow(self, workflow_id: str) -> bool:
        async def run() -> str:
            return str(await self.pool.execute(sql.DEACTIVATE, workflow_id))

        status = await with_retry(
            run, what="deactivating a workflow", retry_for_s=self.options.retry_for_s
        )
        return status.endswith(" 1")

    async def get_workflow_count(self, *, active_only: bool = True) -> int:
        return int(await self._fetchval("counting workflows", sql.COUNT_WORKFLOWS, active_only))
