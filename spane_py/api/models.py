"""Request and response bodies of the HTTP API.

Requests refuse unknown fields (a typo such as ``priorty`` is a 422 naming it, not a
silently ignored option); responses are plain snake_case JSON. The engine's own read
models (``ExecutionState``, ``SpanView``, ``LogView``) are returned as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from spane_py.state import ExecutionState, ExecutionStatus, LogView, SpanView


class StrictModel(BaseModel):
    """Request bodies: unknown fields are refused."""

    model_config = ConfigDict(extra="forbid")


# Workflows -----------------------------------------------------------------------------
class WorkflowSummary(BaseModel):
    workflow_id: str
    version: int
    name: str
    description: str | None = None
    content_hash: str
    created_at: datetime
    change_notes: str | None = None
    active: bool
    node_count: int


class WorkflowVersion(WorkflowSummary):
    definition: dict[str, Any] = Field(
        description="The definition in SPANE's JSON shape (camelCase), edges on both sides"
    )


class Registered(BaseModel):
    workflow_id: str
    version: int
    content_hash: str
    created: bool = Field(description="False: the latest version already had this content")
    warnings: list[str] = []


class EnqueueOptions(StrictModel):
    priority: int | None = Field(None, ge=1, le=10, description="1-10, higher runs first")
    delay_seconds: float | None = Field(None, ge=0, description="start this much later")
    metadata: dict[str, Any] | None = None


class EnqueueRequest(EnqueueOptions):
    input: Any = Field(None, description="The execution's initial data")
    idempotency_key: Annotated[str, Field(min_length=1, max_length=200)] | None = None


class BulkEnqueueRequest(EnqueueOptions):
    inputs: list[Any] = Field(min_length=1, max_length=10_000, description="One execution per item")


class Enqueued(BaseModel):
    execution_id: str
    workflow_id: str


class BulkEnqueued(BaseModel):
    workflow_id: str
    execution_ids: list[str]


# Executions ----------------------------------------------------------------------------
class ExecutionSummary(BaseModel):
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: ExecutionStatus
    created_at: datetime
    started_at: datetime | None = None
    completed_at: datetime | None = None
    duration_ms: float | None = None
    error: str | None = None
    parent_execution_id: str | None = None
    depth: int = 0
    priority: int | None = None
    metadata: dict[str, Any] = {}


class ExecutionPage(BaseModel):
    items: list[ExecutionSummary]
    next_cursor: str | None = Field(
        description="Pass as ?cursor= for the next (older) page; null on the last page"
    )


class GraphNode(BaseModel):
    id: str
    type: str
    name: str | None = None
    parents: list[str]
    children: list[str]
    status: str = Field(description="The node's status; pending when it has not started")
    input: Any = Field(None, description="The input the node got (null before it started)")


class ExecutionGraph(BaseModel):
    """The pinned version's DAG with each node's status, for drawing."""

    workflow_id: str
    version: int
    entry_nodes: list[str]
    nodes: list[GraphNode]


class Trace(BaseModel):
    execution: ExecutionState
    spans: list[SpanView]
    logs: list[LogView]
    children: list[ExecutionState]
    graph: ExecutionGraph | None = Field(
        None, description="null when the workflow version is no longer stored"
    )


class CancelRequest(StrictModel):
    reason: Annotated[str, Field(max_length=1000)] | None = None


class ControlResult(BaseModel):
    execution_id: str
    action: Literal["pause", "resume", "cancel", "retry"]
    changed: bool = Field(description="False when the execution already was in that state")
    status: ExecutionStatus


class Replayed(BaseModel):
    execution_id: str = Field(description="The new execution")
    replayed_from: str


class BulkControlRequest(StrictModel):
    execution_ids: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=1000
    )
    reason: Annotated[str, Field(max_length=1000)] | None = None


class BulkControlResult(BaseModel):
    action: Literal["pause", "resume", "cancel"]
    changed: list[str]
    unchanged: list[str]
    errors: dict[str, str]


# Resume tokens -------------------------------------------------------------------------
class TokenRequest(StrictModel):
    token: Annotated[str, Field(min_length=1, max_length=500)]


class ResumeRequest(TokenRequest):
    data: Any = Field(None, description="The waiting node's output")


class ResumeToken(BaseModel):
    token: str
    execution_id: str
    node_id: str
    state: Literal["active", "used", "revoked", "expired"]
    created_at: datetime
    expires_at: datetime | None = None
    used_at: datetime | None = None
    revoked_at: datetime | None = None


class Resumed(BaseModel):
    execution_id: str


class Revoked(BaseModel):
    token: str
    revoked: bool


# Dead-letter queue ---------------------------------------------------------------------
class DlqItem(BaseModel):
    dlq_id: int
    execution_id: str
    workflow_id: str
    node_id: str
    error: str
    attempts: int
    failed_at: datetime
    traceback: str | None = None
    retried_at: datetime | None = None
    job: dict[str, Any]


class DlqPage(BaseModel):
    items: list[DlqItem]
    total: int = Field(description="Items in all (retried ones only with include_retried)")


class Purged(BaseModel):
    purged: int


# System --------------------------------------------------------------------------------
class QueueStats(BaseModel):
    queued: int
    scheduled: int
    running: int


class Stats(BaseModel):
    executions: dict[ExecutionStatus, int]
    workflows: int
    dlq: int
    queue: QueueStats


class Check(BaseModel):
    ok: bool
    latency_ms: float | None = None
    error: str | None = None


class LiveWorker(BaseModel):
    worker_id: str
    seconds_since_beat: float


class Workers(BaseModel):
    live: int
    workers: list[LiveWorker]
    error: str | None = None


class Health(BaseModel):
    status: Literal["ok", "degraded", "failing"] = Field(
        description="failing: Redis or the store is down (HTTP 503); degraded: no live worker"
    )
    redis: Check
    store: Check
    workers: Workers


class WebhookTriggered(BaseModel):
    execution_ids: list[str]


__all__ = [
    "BulkControlRequest",
    "BulkControlResult",
    "BulkEnqueueRequest",
    "BulkEnqueued",
    "CancelRequest",
    "Check",
    "ControlResult",
    "DlqItem",
    "DlqPage",
    "EnqueueRequest",
    "Enqueued",
    "ExecutionGraph",
    "ExecutionPage",
    "ExecutionSummary",
    "GraphNode",
    "Health",
    "LiveWorker",
    "Purged",
    "QueueStats",
    "Registered",
    "Replayed",
    "ResumeRequest",
    "ResumeToken",
    "Resumed",
    "Revoked",
    "Stats",
    "TokenRequest",
    "Trace",
    "WebhookTriggered",
    "Workers",
    "WorkflowSummary",
    "WorkflowVersion",
]
