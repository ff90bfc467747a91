"""The PostgreSQL store's retention (a mixin of ``PostgresExecutionStore``): deleting
expired executions in batches. Statements: sql_retention.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spane_py.state import ExecutionStatus
from spane_py.stores.base_retention import PruneResult, check_prunable
from spane_py.stores.postgres import params, sql_retention
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresRetention(PostgresStoreBase):
    async def prune_executions(
        self,
        *,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None = None,
        exclude_workflows: Sequence[str] = (),
        limit: int = 500,
        dry_run: bool = False,
        only: Sequence[str] | None = None,
    ) -> PruneResult:
        check_prunable(status)
        params.check_window(limit)
        ids = None if only is None else [i for i in only if params.is_uuid(i)]
        args = (
            ExecutionStatus(status).value,
            completed_before,
            workflow_id,
            list(exclude_workflows),
            ids,
        )
        if dry_run:
            row = await self._fetchrow(
                "counting expired executions", sql_retention.COUNT_EXPIRED, *args
            )
        else:
            row = await self._fetchrow(
                "deleting expired executions",
                sql_retention.PRUNE,
                *args,
                min(limit, params.MAX_BIGINT),
            )
        assert row is not None
        executions = int(row["executions"])
        return PruneResult(executions, int(row["rows"]) if executions else 0)

    async def find_expired(
        self,
        *,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None = None,
        exclude_workflows: Sequence[str] = (),
        limit: int = 500,
    ) -> list[str]:
        check_prunable(status)
        params.check_window(limit)
        found = await self._fetch(
            "finding expired executions",
            sql_retention.FIND_EXPIRED,
            ExecutionStatus(status).value,
            completed_before,
            workflow_id,
            list(exclude_workflows),
            None,
            min(limit, params.MAX_BIGINT),
        )
        return [str(r["execution_id"]) for r in found]
