"""In-memory ``ExecutionStore`` for development and tests.

Atomicity comes from asyncio: ``transition`` reads, decides and writes without awaiting,
so no other coroutine can interleave. Memory is bounded like SPANE's (1000 executions,
1000 logs per execution, finished executions dropped after an hour) with one difference:
an execution that has not finished is never evicted, and definitions are never forgotten.

Like a database, the store shares no mutable object with its callers: metadata, log fields
and definitions are copied on the way in and on the way out, so mutating a record that was
written or read (or a snapshot handed to ``decide``) never changes what is stored. The
contract suite in ``tests/contract`` holds it to the same behaviour as the Postgres store.
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any

from spane_py import _json
from spane_py.definitions.models import WorkflowDefinition
from spane_py.errors import ExecutionNotFoundError, StatePersistenceError
from spane_py.records import (
    CreatedExecution,
    Decide,
    DlqRecord,
    ExecutionPage,
    ExecutionRecord,
    ExecutionSnapshot,
    LogRecord,
    NodeRecord,
    PendingNode,
    Recent,
    ResumeTokenRecord,
    SavedWorkflow,
    SpanRecord,
    Transition,
    WorkflowVersionRecord,
    evolve_execution,
)
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.memory_triggers import MemoryTriggers


@dataclass(frozen=True, slots=True)
class MemoryStoreStats:
    executions: int
    running: int
    workflows: int
    logs: int
    evicted: int


class InMemoryExecutionStore(MemoryTriggers):
    """``clock`` (monotonic seconds) is for tests of the finished-execution TTL. Schedules
    and webhook bindings: ``MemoryTriggers``."""

    shared = False  # one process's memory

    def describe(self) -> str:
        return "in-memory"

    def __init__(
        self,
        *,
        max_executions: int = 1000,
        max_logs_per_execution: int = 1000,
        max_spans_per_execution: int = 500,
        finished_ttl_seconds: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_executions = max_executions
        self.max_logs_per_execution = max_logs_per_execution
        self.max_spans_per_execution = max_spans_per_execution
        self.finished_ttl_seconds = finished_ttl_seconds
        self._clock = clock
        self._workflows: dict[str, list[WorkflowVersionRecord]] = {}
        self._executions: OrderedDict[str, ExecutionRecord] = OrderedDict()
        self._nodes: dict[str, dict[str, NodeRecord]] = {}
        self._logs: dict[str, deque[LogRecord]] = {}
        self._spans: dict[str, OrderedDict[str, SpanRecord]] = {}
        self._idempotency: dict[tuple[str, str], str] = {}
        self._children: dict[str, list[str]] = {}
        self._finished_at: dict[str, float] = {}  # monotonic time an execution finished
        self._evicted = 0
        self._dlq: dict[int, DlqRecord] = {}
        self._next_dlq_id = 1
        self._tokens: dict[str, ResumeTokenRecord] = {}
        self._init_triggers()

    # Workflows -------------------------------------------------------------------
    async def save_workflow(
        self, definition: WorkflowDefinition, *, content_hash: str, change_notes: str | None
    ) -> SavedWorkflow:
        versions = self._workflows.setdefault(definition.id, [])
        if versions and versions[-1].content_hash == content_hash:
            if not versions[-1].active:
                versions[:] = [replace(v, active=True) for v in versions]
            return SavedWorkflow(_detach_version(versions[-1]), created=False)
        record = WorkflowVersionRecord(
            workflow_id=definition.id,
            version=len(versions) + 1,
            definition=definition.model_copy(deep=True),
            content_hash=content_hash,
            created_at=datetime.now(UTC),
            change_notes=change_notes,
        )
        if versions and not versions[-1].active:
            versions[:] = [replace(v, active=True) for v in versions]
        versions.append(record)
        return SavedWorkflow(_detach_version(record), created=True)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowVersionRecord | None:
        versions = self._workflows.get(workflow_id)
        if not versions:
            return None
        if version is None:
            return _detach_version(versions[-1]) if versions[-1].active else None
        if 1 <= version <= len(versions):
            return _detach_version(versions[version - 1])
        return None

    async def get_workflow_version(self, workflow_id: str) -> int | None:
        versions = self._workflows.get(workflow_id)
        if not versions or not versions[-1].active:
            return None
        return versions[-1].version

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        _check_window(limit=limit, offset=offset)
        latest = self._latest_versions(active_only)
        return [_detach_version(r) for r in latest[offset : offset + limit]]

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        return [_detach_version(v) for v in self._workflows.get(workflow_id, [])]

    async def deactivate_workflow(self, workflow_id: str) -> bool:
        versions = self._workflows.get(workflow_id)
        if not versions or not versions[-1].active:
            return False
        versions[:] = [replace(v, active=False) for v in versions]
        return True

    async def get_workflow_count(self, *, active_only: bool = True) -> int:
        return len(self._latest_versions(active_only))

    def _latest_versions(self, active_only: bool) -> list[WorkflowVersionRecord]:
        latest = [v[-1] for _, v in sorted(self._workflows.items()) if v]
        return [r for r in latest if r.active] if active_only else latest

    # Executions ------------------------------------------------------------------
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
                    return CreatedExecution(_detach(existing), created=False)
                self._executions[existing_id] = evolve_execution(existing, idempotency_key=None)
        if record.execution_id in self._executions:
            raise StatePersistenceError(
                f"execution {record.execution_id!r} already exists",
                execution_id=record.execution_id,
                workflow_id=record.workflow_id,
            )
        if key is not None:
            self._idempotency[key] = record.execution_id
        self._executions[record.execution_id] = _detach(record)
        self._nodes[record.execution_id] = {n.node_id: n for n in nodes}
        if record.parent_execution_id is not None:
            self._children.setdefault(record.parent_execution_id, []).append(record.execution_id)
        if record.status.is_terminal:
            self._finished_at[record.execution_id] = self._clock()
        self._evict(keep=record.execution_id)
        return CreatedExecution(_detach(record), created=True)

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
        return _detach(record)

    async def find_execution_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        _check_window(limit=limit)
        self.cleanup()
        wanted = prefix.lower()
        return sorted(i for i in self._executions if i.lower().startswith(wanted))[:limit]

    async def get_snapshot(self, execution_id: str) -> ExecutionSnapshot | None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None:
            return None
        return ExecutionSnapshot(_detach(record), dict(self._nodes[execution_id]))

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
        result = decide(ExecutionSnapshot(_detach(record), dict(nodes)))
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
                item, dlq_id=self._next_dlq_id, job=_copy_mapping(item.job)
            )
            self._next_dlq_id += 1
        if new is not None:
            self._executions[execution_id] = _detach(new)
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
    ) -> ExecutionPage:
        _check_window(limit=limit)
        self.cleanup()
        # Newest first; execution ids are time-ordered, so the cursor is the last id seen.
        matches = sorted(
            (
                r
                for r in self._executions.values()
                if (workflow_id is None or r.workflow_id == workflow_id)
                and (status is None or r.status == status)
                and (since is None or r.created_at >= since)
                and (until is None or r.created_at < until)
                and (cursor is None or r.execution_id < cursor)
            ),
            key=lambda r: r.execution_id,
            reverse=True,
        )
        page = tuple(_detach(r) for r in matches[:limit])
        more = len(matches) > limit
        return ExecutionPage(page, page[-1].execution_id if more and page else None)

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
            _detach(self._executions[c])
            for c in self._children.get(execution_id, [])
            if c in self._executions
        ]

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None:
        self.cleanup()
        record = self._executions.get(execution_id)
        if record is None or record.parent_execution_id is None:
            return None
        parent = self._executions.get(record.parent_execution_id)
        return None if parent is None else _detach(parent)

    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        _check_window(limit=limit)
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
        found.sort(key=lambda item: item[0])
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
        child_id = _waited_child(node)
        child = self._executions.get(child_id) if child_id is not None else None
        if child is not None and child.status.is_terminal:
            times.append(child.completed_at or child.created_at)
        return min(times) if times else None

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime
    ) -> list[ExecutionRecord]:
        self.cleanup()
        active = 0
        queued: list[ExecutionRecord] = []
        for record in self._executions.values():
            if record.workflow_id != workflow_id:
                continue
            if record.status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
                active += 1
            elif record.status is ExecutionStatus.QUEUED:
                queued.append(record)
        queued.sort(key=lambda r: r.execution_id)
        admitted: list[ExecutionRecord] = []
        for record in queued[: max(limit - active, 0)]:
            started = evolve_execution(record, status=ExecutionStatus.RUNNING, started_at=now)
            self._executions[record.execution_id] = started
            admitted.append(_detach(started))
        return admitted

    async def list_queued_workflows(self) -> list[str]:
        self.cleanup()
        return sorted(
            {r.workflow_id for r in self._executions.values() if r.status is ExecutionStatus.QUEUED}
        )

    # Dead-letter queue -----------------------------------------------------------
    async def list_dlq_items(
        self, *, limit: int = 100, offset: int = 0, include_retried: bool = False
    ) -> list[DlqRecord]:
        _check_window(limit=limit, offset=offset)
        items = [i for i in reversed(self._dlq.values()) if include_retried or i.retried_at is None]
        return [_detach_dlq(i) for i in items[offset : offset + limit]]

    async def get_dlq_item(self, dlq_id: int) -> DlqRecord | None:
        item = self._dlq.get(dlq_id)
        return None if item is None else _detach_dlq(item)

    async def mark_dlq_retried(self, dlq_id: int, at: datetime) -> bool:
        item = self._dlq.get(dlq_id)
        if item is None or item.retried_at is not None:
            return False
        self._dlq[dlq_id] = replace(item, retried_at=at)
        return True

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        doomed = [k for k, i in self._dlq.items() if older_than is None or i.failed_at < older_than]
        for k in doomed:
            del self._dlq[k]
        return len(doomed)

    async def get_dlq_count(self, *, include_retried: bool = False) -> int:
        return sum(1 for i in self._dlq.values() if include_retried or i.retried_at is None)

    # Resume tokens ---------------------------------------------------------------
    async def save_token(self, record: ResumeTokenRecord) -> None:
        if record.token in self._tokens:
            raise StatePersistenceError("this resume token exists already")
        self._tokens[record.token] = record

    async def get_token(self, token: str) -> ResumeTokenRecord | None:
        return self._tokens.get(token)

    async def list_tokens(
        self, *, execution_id: str | None = None, active_only: bool = True, now: datetime
    ) -> list[ResumeTokenRecord]:
        found = [
            t
            for t in self._tokens.values()
            if (execution_id is None or t.execution_id == execution_id)
            and (not active_only or t.state(now) == "active")
        ]
        return sorted(found, key=lambda t: (t.created_at, t.token))

    async def set_token_used(self, token: str, at: datetime) -> bool:
        record = self._usable_token(token)
        if record is not None:
            self._tokens[token] = replace(record, used_at=at)
        return record is not None

    async def revoke_token(self, token: str, at: datetime) -> bool:
        record = self._usable_token(token)
        if record is not None:
            self._tokens[token] = replace(record, revoked_at=at)
        return record is not None

    def _usable_token(self, token: str) -> ResumeTokenRecord | None:
        record = self._tokens.get(token)
        if record is None or record.used_at is not None or record.revoked_at is not None:
            return None
        return record

    # Logs ------------------------------------------------------------------------
    async def add_log(self, record: LogRecord) -> None:
        self.cleanup()
        if record.execution_id not in self._executions:
            return
        logs = self._logs.get(record.execution_id)
        if logs is None:
            logs = self._logs[record.execution_id] = deque(maxlen=self.max_logs_per_execution)
        logs.append(_detach_log(record))

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            await self.add_log(record)

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]:
        self.cleanup()
        logs = self._logs.get(execution_id, ())
        return [_detach_log(r) for r in logs if node_id is None or r.node_id == node_id]

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        self.cleanup()
        return list(self._spans.get(execution_id, {}).values())

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # Housekeeping ----------------------------------------------------------------
    def stats(self) -> MemoryStoreStats:
        self.cleanup()
        return MemoryStoreStats(
            executions=len(self._executions),
            running=sum(1 for r in self._executions.values() if not r.status.is_terminal),
            workflows=len(self._workflows),
            logs=sum(len(v) for v in self._logs.values()),
            evicted=self._evicted,
        )

    def cleanup(self) -> int:
        """Drop finished executions older than the TTL; returns how many were dropped.

        Every store method calls it first (cheap: it stops at the first execution that has
        not expired), so an expired execution is never seen, even when nothing new is
        created.
        """
        if not self._finished_at:
            return 0
        cutoff = self._clock() - self.finished_ttl_seconds
        expired: list[str] = []
        for execution_id, finished in self._finished_at.items():  # in the order they finished
            if finished > cutoff:
                break
            expired.append(execution_id)
        for execution_id in expired:
            self._drop(execution_id)
        return len(expired)

    def clear(self) -> None:
        """Forget every execution and log. Definitions are kept: they are never forgotten."""
        self._executions.clear()
        self._nodes.clear()
        self._logs.clear()
        self._spans.clear()
        self._idempotency.clear()
        self._children.clear()
        self._finished_at.clear()
        self._dlq.clear()
        self._tokens.clear()

    def _evict(self, *, keep: str) -> None:
        if len(self._executions) <= self.max_executions:
            return
        # Least recently used first; an execution that has not finished is never evicted,
        # nor is ``keep``, the one just created (its creator is about to read it).
        for execution_id in list(self._executions):
            if len(self._executions) <= self.max_executions:
                break
            if execution_id != keep and self._executions[execution_id].status.is_terminal:
                self._drop(execution_id)

    def _drop(self, execution_id: str) -> None:
        record = self._executions.pop(execution_id, None)
        for token in [t for t, r in self._tokens.items() if r.execution_id == execution_id]:
            del self._tokens[token]
        for dlq_id in [k for k, i in self._dlq.items() if i.execution_id == execution_id]:
            del self._dlq[dlq_id]
        self._nodes.pop(execution_id, None)
        self._logs.pop(execution_id, None)
        self._spans.pop(execution_id, None)
        self._finished_at.pop(execution_id, None)
        if record is not None:
            self._evicted += 1
            if record.idempotency_key is not None:
                key = (record.workflow_id, record.idempotency_key)
                if self._idempotency.get(key) == execution_id:
                    del self._idempotency[key]
            if record.parent_execution_id is not None:
                siblings = self._children.get(record.parent_execution_id)
                if siblings and execution_id in siblings:
                    siblings.remove(execution_id)
        self._children.pop(execution_id, None)


# Copies: what the store holds is never an object a caller also holds. ---------------


_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def _detach(record: ExecutionRecord) -> ExecutionRecord:
    # Most executions have no metadata: an immutable empty mapping needs no copy.
    if not record.metadata:
        if record.metadata is _NO_METADATA:
            return record
        return evolve_execution(record, metadata=_NO_METADATA)
    return evolve_execution(record, metadata=_copy_mapping(record.metadata))


def _detach_dlq(item: DlqRecord) -> DlqRecord:
    return replace(item, job=_copy_mapping(item.job))


def _waited_child(node: NodeRecord) -> str | None:
    """The child execution a waiting sub-workflow node waits for, if any."""
    if node.wait is None:
        return None
    info = _json.loads(node.wait)
    child = info.get("child") if isinstance(info, dict) else None
    return child if isinstance(child, str) else None


def _detach_log(record: LogRecord) -> LogRecord:
    return replace(record, fields=_copy_mapping(record.fields))


def _detach_version(record: WorkflowVersionRecord) -> WorkflowVersionRecord:
    return replace(record, definition=record.definition.model_copy(deep=True))


def _copy_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(value)) if value else {}


def _check_window(*, limit: int, offset: int = 0) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")
