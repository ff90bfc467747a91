"""What the in-memory store holds, its bounds and housekeeping (``MemoryState``, the base
of each of ``InMemoryExecutionStore``'s parts), and the copies that keep it apart from
its callers.

Bounds: beyond ``max_executions`` the least recently used finished executions are
dropped; a finished execution is dropped ``finished_ttl_seconds`` after it finished; an
execution that has not finished is never dropped, and definitions are never forgotten.
Artifacts hold at most ``max_artifact_bytes`` in all (memory_artifacts.py); the event
history keeps ``max_events_per_execution`` per execution (memory_events.py).
"""

from __future__ import annotations

import copy
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from spane_py.records import (
    ArtifactRecord,
    DlqRecord,
    EventRecord,
    ExecutionRecord,
    LogRecord,
    NodeRecord,
    ResumeTokenRecord,
    ScheduleRecord,
    SpanRecord,
    WebhookRecord,
    WorkflowVersionRecord,
    evolve_execution,
)


class MemoryState:
    """The records, by area, and the housekeeping every part shares. ``clock`` (monotonic
    seconds) is for tests of the finished-execution TTL."""

    def __init__(
        self,
        *,
        max_executions: int = 1000,
        max_logs_per_execution: int = 1000,
        max_spans_per_execution: int = 500,
        finished_ttl_seconds: float = 3600.0,
        max_artifact_bytes: int = 256 << 20,
        max_events_per_execution: int = 1000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_executions = max_executions
        self.max_logs_per_execution = max_logs_per_execution
        self.max_spans_per_execution = max_spans_per_execution
        self.finished_ttl_seconds = finished_ttl_seconds
        self.max_artifact_bytes = max_artifact_bytes
        self.max_events_per_execution = max_events_per_execution
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
        self._schedules: dict[str, ScheduleRecord] = {}
        self._webhooks: dict[tuple[str, str], WebhookRecord] = {}
        self._artifacts: dict[str, dict[str, tuple[ArtifactRecord, bytes]]] = {}
        self._artifact_bytes = 0
        # Events by execution (None: about no execution), each with the order it came in.
        self._events: dict[str | None, deque[tuple[int, EventRecord]]] = {}
        self._event_seq = 0

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
        self._artifacts.clear()
        self._artifact_bytes = 0
        self._events.clear()

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

    def _drop(self, execution_id: str, *, evicted: bool = True) -> None:
        record = self._executions.pop(execution_id, None)
        for token in [t for t, r in self._tokens.items() if r.execution_id == execution_id]:
            del self._tokens[token]
        for dlq_id in [k for k, i in self._dlq.items() if i.execution_id == execution_id]:
            del self._dlq[dlq_id]
        self._nodes.pop(execution_id, None)
        self._logs.pop(execution_id, None)
        self._spans.pop(execution_id, None)
        self._drop_artifacts(execution_id)
        self._events.pop(execution_id, None)
        self._finished_at.pop(execution_id, None)
        if record is not None:
            self._evicted += evicted
            if record.idempotency_key is not None:
                key = (record.workflow_id, record.idempotency_key)
                if self._idempotency.get(key) == execution_id:
                    del self._idempotency[key]
            if record.parent_execution_id is not None:
                siblings = self._children.get(record.parent_execution_id)
                if siblings and execution_id in siblings:
                    siblings.remove(execution_id)
        self._children.pop(execution_id, None)

    def _drop_artifacts(self, execution_id: str) -> None:
        held = self._artifacts.pop(execution_id, None)
        if held:
            self._artifact_bytes -= sum(len(data) for _, data in held.values())


# Copies: what the store holds is never an object a caller also holds. ---------------


_NO_METADATA: Mapping[str, Any] = MappingProxyType({})


def detach(record: ExecutionRecord) -> ExecutionRecord:
    # Most executions have no metadata: an immutable empty mapping needs no copy.
    if not record.metadata:
        if record.metadata is _NO_METADATA:
            return record
        return evolve_execution(record, metadata=_NO_METADATA)
    return evolve_execution(record, metadata=copy_mapping(record.metadata))


def detach_dlq(item: DlqRecord) -> DlqRecord:
    return replace(item, job=copy_mapping(item.job))


def detach_log(record: LogRecord) -> LogRecord:
    return replace(record, fields=copy_mapping(record.fields))


def detach_version(record: WorkflowVersionRecord) -> WorkflowVersionRecord:
    return replace(record, definition=record.definition.model_copy(deep=True))


def copy_mapping(value: Mapping[str, Any]) -> dict[str, Any]:
    return copy.deepcopy(dict(value)) if value else {}


def check_window(*, limit: int, offset: int = 0) -> None:
    if limit < 0 or offset < 0:
        raise ValueError(f"limit and offset must not be negative (got {limit}, {offset})")
