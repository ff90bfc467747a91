"""The PostgreSQL store's reads of executions and their nodes: one execution, its nodes,
listings, counts, parents and children, and what the sweeper and admission look for (a
mixin of ``PostgresExecutionStore``). Statements: sql.py."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spane_py.execution_search import FieldMatch
from spane_py.records import ExecutionPage, ExecutionRecord, NodeRecord, PendingNode
from spane_py.state import ExecutionStatus
from spane_py.stores.postgres import params, rows, sql, sql_backlog, sql_listing
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresQueries(PostgresStoreBase):
    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        if not params.is_uuid(execution_id):
            return None
        row = await self._fetchrow("reading an execution", sql.GET_EXECUTION, execution_id)
        return rows.execution(row) if row is not None else None

    async def find_execution_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        params.check_window(limit)
        bounds = params.uuid_prefix_range(prefix)
        if bounds is None or limit == 0:
            return []
        found = await self._fetch("finding executions", sql.FIND_EXECUTION_IDS, *bounds, limit)
        return [r["execution_id"] for r in found]

    async def get_node_results(self, execution_id: str) -> dict[str, NodeRecord]:
        if not params.is_uuid(execution_id):
            return {}
        found = await self._fetch("reading node results", sql.GET_NODES, execution_id)
        return {n.node_id: n for n in map(rows.node, found)}

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
        id_prefix: str | None = None,
        waiting: bool = False,
        where: Sequence[FieldMatch] = (),
        parent_ids: Sequence[str] | None = None,
        roots_only: bool = False,
    ) -> ExecutionPage:
        params.check_window(limit)
        if cursor is not None and not params.is_uuid(cursor):
            raise ValueError(f"invalid cursor {cursor!r}")
        built = sql_listing.list_executions(
            workflow_id=workflow_id,
            status=status,
            since=since,
            until=until,
            limit=limit,
            cursor=cursor,
            id_prefix=id_prefix,
            waiting=waiting,
            where=where,
            parent_ids=parent_ids,
            roots_only=roots_only,
        )
        if built is None:
            return ExecutionPage((), None)
        statement, args = built
        found = await self._fetch("listing executions", statement, *args)
        items = tuple(rows.execution(r) for r in found[:limit])
        more = len(found) > limit
        return ExecutionPage(items, items[-1].execution_id if more and items else None)

    async def get_execution_count(
        self, *, workflow_id: str | None = None, status: ExecutionStatus | None = None
    ) -> int:
        return int(
            await self._fetchval(
                "counting executions",
                sql.COUNT_EXECUTIONS,
                workflow_id,
                ExecutionStatus(status).value if status is not None else None,
            )
        )

    async def get_child_executions(self, execution_id: str) -> list[ExecutionRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading child executions", sql.CHILD_EXECUTIONS, execution_id)
        return [rows.execution(r) for r in found]

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None:
        if not params.is_uuid(execution_id):
            return None
        row = await self._fetchrow("reading a parent execution", sql.PARENT_EXECUTION, execution_id)
        return rows.execution(row) if row is not None else None

    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        params.check_window(limit)
        found = await self._fetch(
            "listing pending nodes", sql_backlog.PENDING_NODES, older_than, limit
        )
        return [rows.pending_node(r) for r in found]

    async def list_queued_workflows(self) -> list[str]:
        found = await self._fetch("listing queued workflows", sql_backlog.QUEUED_WORKFLOWS)
        return [r["workflow_id"] for r in found]
