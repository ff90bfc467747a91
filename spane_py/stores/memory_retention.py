"""The in-memory store's retention (``RetentionStore``; a part of
``InMemoryExecutionStore``): the rule of ``RetentionStore.prune_executions``, in Python."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from spane_py.records import ExecutionRecord
from spane_py.state import ExecutionStatus
from spane_py.stores.base_retention import PruneResult, check_prunable
from spane_py.stores.memory_state import MemoryState, check_window


class MemoryRetention(MemoryState):
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
        expired = self._expired(status, completed_before, workflow_id, exclude_workflows, only)
        check_window(limit=limit)
        if not dry_run:
            expired = expired[:limit]
        rows = sum(self._rows_of(r.execution_id) for r in expired)
        if not dry_run:
            for record in expired:
                self._drop(record.execution_id, evicted=False)
        return PruneResult(len(expired), rows)

    async def find_expired(
        self,
        *,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None = None,
        exclude_workflows: Sequence[str] = (),
        limit: int = 500,
    ) -> list[str]:
        expired = self._expired(status, completed_before, workflow_id, exclude_workflows, None)
        check_window(limit=limit)
        return [r.execution_id for r in expired[:limit]]

    def _expired(
        self,
        status: ExecutionStatus,
        completed_before: datetime,
        workflow_id: str | None,
        exclude_workflows: Sequence[str],
        only: Sequence[str] | None,
    ) -> list[ExecutionRecord]:
        check_prunable(status)
        self.cleanup()
        excluded = frozenset(exclude_workflows)
        among = None if only is None else frozenset(only)
        return sorted(
            (
                r
                for r in self._executions.values()
                if r.status == status
                and r.completed_at is not None
                and r.completed_at < completed_before
                and (workflow_id is None or r.workflow_id == workflow_id)
                and r.workflow_id not in excluded
                and (among is None or r.execution_id in among)
                and not self._needed(r)
            ),
            key=lambda r: (r.completed_at, r.execution_id),
        )

    def _needed(self, record: ExecutionRecord) -> bool:
        """Whether an unfinished execution needs ``record``: its parent, or a child."""
        parent_id = record.parent_execution_id
        parent = None if parent_id is None else self._executions.get(parent_id)
        if parent is not None and not parent.status.is_terminal:
            return True
        return any(
            c in self._executions and not self._executions[c].status.is_terminal
            for c in self._children.get(record.execution_id, ())
        )

    def _rows_of(self, execution_id: str) -> int:
        """The rows a database would delete with the execution, its own included."""
        return (
            1
            + len(self._nodes.get(execution_id, ()))
            + len(self._logs.get(execution_id, ()))
            + len(self._spans.get(execution_id, ()))
            + len(self._artifacts.get(execution_id, ()))
            + len(self._events.get(execution_id, ()))
            + sum(1 for t in self._tokens.values() if t.execution_id == execution_id)
            + sum(1 for i in self._dlq.values() if i.execution_id == execution_id)
        )
