"""The in-memory store's executions and node records (``ExecutionStateStore``; a part of
``InMemoryExecutionStore``): creating, reading, listing, and ``transition``.

Atomicity comes from asyncio: ``transition`` reads, decides and writes without awaiting,
so no other coroutine can interleave.
"""

from __future__ import annotations

import copy
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

from spane_py.errors import ExecutionNotFoundError, StatePersistenceError
from spane_py.execution_search import FieldMatch
from spane_py.records import (
    CreatedExecution,
    Decide,
    ExecutionPage,
    ExecutionRecord,
    ExecutionSnapshot,
    NodeRecord,
    Recent,
    Transition,
    evolve_execution,
)
from spane_py.state import ExecutionStatus
from spane_py.stores import memory_listing
from spane_py.stores.memory_state import MemoryState, check_window, copy_mapping, detach


class MemoryExecutions(MemoryState):
    async def create_execution(
        self,
        record: ExecutionRecord,
        nodes: Sequence[NodeRecord],
        *,
        idempotency_after: datetime | None = None,
    ) -> CreatedExecution:
        self.cleanup()
        key: tuple[str, str] | None = None
        if record.idempotency_key is not None:
            key = (record.workflow_id, record.idempotency_key)
            existing_id = self._idempotency.get(key)
            if existing_id is not None and existing_id in self._executions:
                existing = self._executions[existing_id]
                if idempotency_after is None or existing.created_at >= idempotency_after:
                    return CreatedExecution(detach(existing), created=False)
                self._executions[existing_id] = evolve_execution(existing, idempotency_key=None)
        if record.execution_id in self._executions:
            raise StatePersistenceError(
                f"execution {record.execution_id!r} already exists",
                execution_id=record.execution_id,
                workflow_id=record.workflow_id,
            )
        if key is not None:
            self._idempotency[key] = record.execution_id
        self._executions[record.execution_id] = detach(record)
        self._nodes[record.execution_id] = {n.node_id: n for n in nodes}
        if record.parent_execution_id is not None:
            self._children.setdefault(record.parent_execution_id, []).append(record.execution_id)
        if record.status.is_terminal:
            self._finished_at[record.execution_id] = self._clock()
        self._evict(keep=record.execution_id)
        return CreatedExecution(detach(record), created=True)

    async def create_executions(
        self, items: Sequence[tuple[ExecutionRecord, Sequence[NodeRecord]]]
    ) -> None:
        ids = [record.execution_id for record, _ in items]
        if any(r.idempotency_key is not None for r, _ in items):
            raise ValueError("create_executions takes no idempotency keys")
        if len(set(ids)) != len(ids) or any(i in self._executions for i in ids):
            raise StatePersistenceError("an execution id of the batch already exists")
        for record, nodes in items:
            await self.create_execution(record, nodes)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None:
            return None
        self._executions.move_to_end(execution_id)
        return detach(record)

    async def find_execution_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        check_window(limit=limit)
        self.cleanup()
        wanted = prefix.lower()
        return sorted(i for i in self._executions if i.lower().startswith(wanted))[:limit]

    async def get_snapshot(self, execution_id: str) -> ExecutionSnapshot | None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None:
            return None
        return ExecutionSnapshot(detach(record), dict(self._nodes[execution_id]))

    async def get_node_results(self, execution_id: str) -> dict[str, NodeRecord]:
        self.cleanup()
        return dict(self._nodes.get(execution_id, {}))

    async def transition(
        self,
        execution_id: str,
        decide: Decide,
        *,
        cached: ExecutionSnapshot | None = None,
        recent: Recent | None = None,
    ) -> Transition:
        # ``cached`` and ``recent`` are ignored: reading here costs nothing.
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        nodes = self._nodes[execution_id]
        # No await from here to the end: nothing can interleave. The snapshot is a copy,
        # so neither decide nor later writes can change the other.
        result = decide(ExecutionSnapshot(detach(record), dict(nodes)))
        new = result.execution
        if new is not None and new.execution_id != execution_id:
            raise ValueError(
                f"a transition of execution {execution_id!r} returned the record of "
                f"execution {new.execution_id!r}"
            )
        for node in result.nodes:
            nodes[node.node_id] = node
        if result.spans:
            spans = self._spans.setdefault(execution_id, OrderedDict())
            for span in result.spans:
                spans.setdefault(span.span_id, span)  # the same span twice: written once
            while len(spans) > self.max_spans_per_execution:
                spans.popitem(last=False)
        for item in result.dlq:
            self._dlq[self._next_dlq_id] = replace(
                item, dlq_id=self._next_dlq_id, job=copy_mapping(item.job)
            )
            self._next_dlq_id += 1
        if new is not None:
            self._executions[execution_id] = detach(new)
            if new.status.is_terminal and not record.status.is_terminal:
                self._finished_at[execution_id] = self._clock()
            elif not new.status.is_terminal:
                self._finished_at.pop(execution_id, None)
        self._executions.move_to_end(execution_id)
        return result

    async def update_execution_metadata(
        self, execution_id: str, metadata: Mapping[str, Any]
    ) -> None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        merged = {**record.metadata, **copy.deepcopy(dict(metadata))}
        self._executions[execution_id] = replace(record, metadata=merged)

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
        check_window(limit=limit)
        self.cleanup()
        return memory_listing.select(
            self._executions.values(),
            self._nodes,
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

    async def get_execution_count(
        self, *, workflow_id: str | None = None, status: ExecutionStatus | None = None
    ) -> int:
        self.cleanup()
        return sum(
            1
            for r in self._executions.values()
            if (workflow_id is None or r.workflow_id == workflow_id)
            and (status is None or r.status == status)
        )

    async def get_child_executions(self, execution_id: str) -> list[ExecutionRecord]:
        self.cleanup()
        return [
            detach(self._executions[c])
            for c in self._children.get(execution_id, [])
            if c in self._executions
        ]

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None or record.parent_execution_id is None:
            return None
        parent = self._executions.get(record.parent_execution_id)
        return None if parent is None else detach(parent)
