"""The in-memory store's backlog (``BacklogStore``; a part of ``InMemoryExecutionStore``):
the nodes whose job the sweeper sends again, and the admission of queued executions (under
``max_concurrency`` and the limit per concurrency key).

Both rules are also written in SQL (stores/postgres/sql.py: ``PENDING_NODES``,
``ADMIT_QUEUED``); their one definition is in ``BacklogStore``'s docstrings, and the
contract suite holds both stores to it.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from spane_py.records import ExecutionRecord, NodeRecord, PendingNode, evolve_execution
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.memory_state import MemoryState, check_window, detach


class MemoryBacklog(MemoryState):
    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        check_window(limit=limit)
        found: list[tuple[datetime, PendingNode]] = []
        for execution_id, record in self._executions.items():
            if record.status is not ExecutionStatus.RUNNING:
                continue
            for node in self._nodes[execution_id].values():
                since = self._pending_since(node)
                if since is None or since >= older_than:
                    continue
                found.append(
                    (
                        since,
                        PendingNode(
                            execution_id,
                            record.workflow_id,
                            record.workflow_version,
                            node.node_id,
                            node.generation,
                            record.priority,
                        ),
                    )
                )
        # Ties in the order PostgreSQL gives them: by execution id, then node id.
        found.sort(key=lambda item: (item[0], item[1].execution_id, item[1].node_id))
        return [pending for _, pending in found[:limit]]

    def _pending_since(self, node: NodeRecord) -> datetime | None:
        """Since when a node has wanted its job sent (None: it does not)."""
        if node.status in (NodeStatus.QUEUED, NodeStatus.RUNNING):
            queued = node.queued_at
            since = node.started_at or queued
            if queued is None or since is None:
                return None
            return max(queued, since)
        if node.status is not NodeStatus.WAITING:
            return None
        times = [node.wake_at] if node.wake_at is not None else []
        child_id = node.wait_child
        child = self._executions.get(child_id) if child_id is not None else None
        if child is not None and child.status.is_terminal:
            times.append(child.completed_at or child.created_at)
        return min(times) if times else None

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime, *, key_limit: int | None = None
    ) -> list[ExecutionRecord]:
        self.cleanup()
        active = 0
        per_key: Counter[str] = Counter()  # active (then also admitted) per concurrency key
        queued: list[ExecutionRecord] = []
        for record in self._executions.values():
            if record.workflow_id != workflow_id:
                continue
            if record.status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
                active += 1
                if record.concurrency_key is not None:
                    per_key[record.concurrency_key] += 1
            elif record.status is ExecutionStatus.QUEUED:
                queued.append(record)
        queued.sort(key=lambda r: r.execution_id)
        admitted: list[ExecutionRecord] = []
        for record in queued:
            if active >= limit:
                break
            key = record.concurrency_key
            if key_limit is not None and key is not None:
                if per_key[key] >= key_limit:
                    continue  # its key is full: the next one may be of another key
                per_key[key] += 1
            active += 1
            started = evolve_execution(record, status=ExecutionStatus.RUNNING, started_at=now)
            self._executions[record.execution_id] = started
            admitted.append(detach(started))
        return admitted

    async def list_queued_workflows(self) -> list[str]:
        self.cleanup()
        return sorted(
            {r.workflow_id for r in self._executions.values() if r.status is ExecutionStatus.QUEUED}
        )
