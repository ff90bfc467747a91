"""Request and response bodies of the HTTP API.

Requests refuse unknown fields (a typo such as ``priorty`` is a 422 naming it, not a
silently ignored option); responses are plain snake_case JSON. The engine's own read
models (``ExecutionState``, ``SpanView``, ``LogView``) are returned as they are.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

from spane_py._text import text_problem
from spane_py.limits import MAX_DELAY_SECONDS
from spane_py.state import ArtifactInfo, ExecutionState, ExecutionStatus, LogView, SpanView


def _storable(value: str) -> str:
    problem = text_problem(value)
    if problem is not None:
        raise PydanticCustomError("string_unstorable", "{msg}", {"msg": problem})
    return value


# Text a request stores or looks up: no NUL character, no lone surrogate (a 422 naming the
# field; ``input``, ``metadata`` and ``data`` are checked by the engine).
Text = Annotated[str, AfterValidator(_storable)]


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
    delay_seconds: float | None = Field(
        None,
        ge=0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description=f"start this much later (at most {MAX_DELAY_SECONDS}: 10 years)",
    )
    metadata: dict[str, Any] | None = None


class EnqueueRequest(EnqueueOptions):
    input: Any = Field(None, description="The execution's initial data")
    version: int | None = Field(None, ge=1, description="A stored version (default: latest)")
    idempotency_key: Annotated[Text, Field(min_length=1, max_length=200)] | None = None


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
    output: Any = Field(
        None, description="Once completed: the data of its final nodes (null until then)"
    )


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
    artifacts: list[ArtifactInfo] = []
    graph: ExecutionGraph | None = Field(
        None, description="null when the workflow version is no longer stored"
    )


class CancelRequest(StrictModel):
    reason: Annotated[Text, Field(max_length=1000)] | None = None


class ControlResult(BaseModel):
    execution_id: str
    action: Literal["pause", "resume", "cancel", "retry"]
    changed: bool = Field(description="False when the execution already was in that state")
    status: ExecutionStatus


class Replayed(BaseModel):
    execution_id: str = Field(description="The new execution")
    replayed_from: str


class BulkControlRequest(StrictModel):
    execution_ids: list[Annotated[Text, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=1000
    )
    reason: Annotated[Text, Field(max_length=1000)] | None = None


class BulkControlResult(BaseModel):
    action: Literal["pause", "resume", "cancel", "retry", "replay"]
    changed: list[str]
    unchanged: list[str]
    errors: dict[str, str]
    created: dict[str, str] = Field(
        default_factory=dict, description="replay: each execution's new execution"
    )


# Resume tokens -------------------------------------------------------------------------
class TokenRequest(StrictModel):
    token: Annotated[Text, Field(min_length=1, max_length=500)]


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
    queues: list[str] = Field(default_factory=list, description="the queues it consumes")
    concurrency: int = 0
    host: str = ""
    pid: int = 0
    started_at: float = Field(0.0, description="unix seconds (0: not reported)")
    running: int = Field(0, description="jobs it ran at its last heartbeat")


class QueueInfo(BaseModel):
    name: str
    queued: int = Field(description="pending jobs")
    running: int
    oldest_waiting_s: float | None = Field(description="age of the oldest pending job")
    workers: int = Field(description="live workers consuming the queue")
    unserved: bool = Field(description="jobs wait and no live worker consumes the queue")


class Workers(BaseModel):
    live: int
    workers: list[LiveWorker]
    error: str | None = None


class Health(BaseModel):
    """``/healthz`` for a caller that presented the API token (or with auth off)."""

    status: Literal["ok", "degraded", "failing"] = Field(
        description="failing: Redis or the store is down (HTTP 503); degraded: no live "
        "worker, or jobs wait on a queue no live worker consumes"
    )
    redis: Check
    store: Check
    workers: Workers
    unserved_queues: list[QueueInfo] = Field(
        default_factory=list,
        description="queues that jobs wait on while no live worker consumes them",
    )


class CheckSummary(BaseModel):
    ok: bool


class WorkersSummary(BaseModel):
    live: int


class HealthSummary(BaseModel):
    """``/healthz`` without the API token (when one is set): whether each dependency works
    and how many workers are alive, without latencies, errors or worker ids."""

    status: Literal["ok", "degraded", "failing"]
    redis: CheckSummary
    store: CheckSummary
    workers: WorkersSummary


class HistoryEvent(BaseModel):
    """One event of the event history (``engine.get_events``)."""

    type: str = Field(description="Its stable name: node.completed, execution.failed, ...")
    at: datetime
    execution_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    fields: dict[str, Any] = Field(default_factory=dict, description="attempt, error, ...")


class WebhookTriggered(BaseModel):
    execution_ids: list[str]


__all__ = [
    "BulkControlRequest",
    "BulkControlResult",
    "BulkEnqueueRequest",
    "BulkEnqueued",
    "CancelRequest",
    "Check",
    "CheckSummary",
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
    "HealthSummary",
    "HistoryEvent",
    "LiveWorker",
    "Purged",
    "QueueInfo",
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
    "WorkersSummary",
    "WorkflowSummary",
    "WorkflowVersion",
]
