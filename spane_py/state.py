"""Statuses and the public, read-only view of an execution."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict


class ExecutionStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_EXECUTION


_TERMINAL_EXECUTION = frozenset(
    {ExecutionStatus.COMPLETED, ExecutionStatus.FAILED, ExecutionStatus.CANCELLED}
)


class NodeStatus(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    WAITING = "waiting"  # suspended: a delay, a child execution or an event completes it
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL_NODE


_TERMINAL_NODE = frozenset(
    {NodeStatus.SUCCEEDED, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.CANCELLED}
)


class NodeResult(BaseModel):
    """One node's result: SPANE's ``ExecutionResult`` fields plus status, attempts and times."""

    model_config = ConfigDict(frozen=True)

    node_id: str
    status: NodeStatus
    success: bool
    data: Any = None
    error: str | None = None
    next_nodes: list[str] | None = None
    skipped: bool = False
    attempts: int = 0
    started_at: datetime | None = None
    completed_at: datetime | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000.0


class ExecutionState(BaseModel):
    """An execution as stored: status, pinned version, and the results of its nodes so far.

    ``output``: once it completed, the data of its final nodes (the nodes without
    children) — one final node: its data; several: ``{node_id: data}`` of those that
    succeeded (a skipped branch is left out); None until it completes, and when it failed
    or was cancelled. What a ``sub-workflow`` node hands its parent."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    workflow_id: str
    workflow_version: int
    status: ExecutionStatus
    node_results: dict[str, NodeResult]
    started_at: datetime
    completed_at: datetime | None = None
    parent_execution_id: str | None = None
    depth: int = 0
    initial_data: Any = None
    metadata: dict[str, Any] = {}
    error: str | None = None
    priority: int | None = None
    output: Any = None

    @property
    def duration_ms(self) -> float | None:
        if self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds() * 1000.0


class SpanView(BaseModel):
    """One attempt of one node in an execution's trace."""

    model_config = ConfigDict(frozen=True)

    span_id: str
    node_id: str
    name: str
    attempt: int
    status: str  # succeeded, failed, skipped, retrying, cancelled
    started_at: datetime
    ended_at: datetime | None = None
    worker_id: str | None = None
    error: str | None = None
    traceback: str | None = None
    attributes: dict[str, Any] = {}

    @property
    def duration_ms(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds() * 1000.0


class LogView(BaseModel):
    """A log line a node wrote with ``ctx.log``."""

    model_config = ConfigDict(frozen=True)

    timestamp: datetime
    level: str
    message: str
    node_id: str | None = None
    fields: dict[str, Any] = {}


class ArtifactInfo(BaseModel):
    """An artifact of an execution (``ctx.put_artifact``), without its bytes:
    ``engine.list_artifacts``, the trace, ``GET /api/executions/{id}/artifacts``."""

    model_config = ConfigDict(frozen=True)

    execution_id: str
    name: str
    node_id: str | None = None  # the node that put it
    content_type: str
    size: int  # bytes
    created_at: datetime


class Artifact(ArtifactInfo):
    """An artifact with its bytes: ``engine.get_artifact``. ``value()`` is what
    ``ctx.get_artifact`` gives a node: the value of one put as JSON, else the bytes."""

    data: bytes

    def value(self) -> Any:
        from spane_py.artifacts import decode

        return decode(self.data, self.content_type)


class ExecutionTrace(BaseModel):
    """Everything recorded about an execution: ``engine.get_trace(execution_id)``."""

    model_config = ConfigDict(frozen=True)

    execution: ExecutionState
    spans: list[SpanView]
    logs: list[LogView]
    children: list[ExecutionState]
    artifacts: list[ArtifactInfo] = []
