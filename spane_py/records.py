"""The records the engine decides on and the stores persist, and ``Transition``: what a
planner decision asks a store to write.

A neutral module: the planner, the runner and the stores all speak in these types, and it
imports neither the stores nor the queue (``spane_py.stores.base`` holds the store
protocol and re-exports these names).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.definitions.models import WorkflowDefinition
from spane_py.state import ExecutionStatus, NodeStatus


@dataclass(frozen=True, slots=True)
class NodeRecord:
    node_id: str
    status: NodeStatus
    generation: int = 0
    attempts: int = 0
    output: str | None = None  # JSON text of the node's data; None when it has none
    error: str | None = None
    next_nodes: tuple[str, ...] | None = None
    skipped: bool = False
    queued_at: datetime | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    # A WAITING node: when its job is due again (a timer, a wait's timeout; None: only an
    # event wakes it), what it waits for (JSON text, private to the built-in node type that
    # wrote it: stores keep it and never read it) and the execution whose end wakes it (a
    # sub-workflow's child; the sweeper's rule reads this typed field, not the JSON).
    wake_at: datetime | None = None
    wait: str | None = None
    wait_child: str | None = None

    @property
    def data(self) -> Any:
        return None if self.output is None else _json.loads(self.output)

    def evolve(self, **changes: Any) -> NodeRecord:
        """``dataclasses.replace`` without its generic overhead (a node hop makes several)."""
        return NodeRecord(
            *[changes.pop(f) if f in changes else getattr(self, f) for f in _NODE_FIELDS]
        )


@dataclass(frozen=True, slots=True)
class ExecutionRecord:
    execution_id: str
    workflow_id: str
    workflow_version: int
    status: ExecutionStatus
    created_at: datetime
    initial_data: str = "null"  # JSON text
    metadata: Mapping[str, Any] = field(default_factory=dict)
    parent_execution_id: str | None = None
    parent_node_id: str | None = None
    depth: int = 0
    priority: int | None = None
    idempotency_key: str | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error: str | None = None
    # Its workflow's concurrency key value (``ConcurrencyLimit.key_of``: canonical JSON
    # text), fixed when it is created; None: its workflow had no key limit then.
    concurrency_key: str | None = None
    # A completed execution's output (JSON text): the data of its final nodes, set by the
    # planner when it completes (``dataflow.final_output``); None until then, and for an
    # execution that failed or was cancelled.
    output: str | None = None


_NODE_FIELDS = tuple(f.name for f in fields(NodeRecord))
_EXECUTION_FIELDS = tuple(f.name for f in fields(ExecutionRecord))


def evolve_execution(record: ExecutionRecord, **changes: Any) -> ExecutionRecord:
    """``dataclasses.replace`` for execution records, without its generic overhead."""
    return ExecutionRecord(
        *[changes.pop(f) if f in changes else getattr(record, f) for f in _EXECUTION_FIELDS]
    )


@dataclass(frozen=True, slots=True)
class ExecutionSnapshot:
    """An execution and its node records as of one moment. Absent node = pending.

    ``revision`` is the store's version counter of the execution when the snapshot was
    read (None where the store keeps none): see ``ExecutionStore.transition``'s ``cached``.
    """

    execution: ExecutionRecord
    nodes: Mapping[str, NodeRecord]
    revision: int | None = None


@dataclass(frozen=True, slots=True)
class SpanRecord:
    """One attempt of one node, as a span of the execution's trace."""

    span_id: str  # "<execution>:<node>:<generation>:<attempt>": writing it twice is a no-op
    execution_id: str
    node_id: str
    name: str
    attempt: int
    status: str  # succeeded, failed, skipped, retrying
    started_at: datetime
    ended_at: datetime | None = None
    worker_id: str | None = None
    error: str | None = None
    traceback: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DlqRecord:
    """A node that failed for good, kept for inspection and retry (the dead-letter queue)."""

    execution_id: str
    workflow_id: str
    node_id: str
    job: Mapping[str, Any]  # the node job's payload (JSON object)
    error: str
    attempts: int
    failed_at: datetime
    traceback: str | None = None
    dlq_id: int | None = None  # assigned by the store
    retried_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ResumeTokenRecord:
    """A token that completes one waiting node once (``engine.resume``)."""

    token: str
    execution_id: str
    node_id: str
    generation: int
    created_at: datetime
    expires_at: datetime | None = None
    used_at: datetime | None = None
    revoked_at: datetime | None = None

    def state(self, now: datetime) -> str:
        """active, used, revoked or expired."""
        if self.used_at is not None:
            return "used"
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A schedule trigger of a registered workflow (``register_workflow`` writes them).

    ``schedule_id`` is derived from the workflow and the trigger's cron and timezone, so
    registering the same trigger again finds the same record (its ``paused`` and
    ``last_tick`` kept). ``last_tick`` is the latest tick dealt with — fired, or passed by
    as missed; ticks after it (after ``created_at`` while it is None) are still to come.
    """

    schedule_id: str
    workflow_id: str
    cron: str
    timezone: str
    created_at: datetime
    missed: str = "skip"  # skip | run_once
    paused: bool = False
    last_tick: datetime | None = None


@dataclass(frozen=True, slots=True)
class WebhookRecord:
    """A webhook trigger: ``method`` requests to ``path`` start ``workflow_id``. One
    workflow per path and method; ``secret`` (not shown in reprs) makes a signature
    required."""

    path: str
    method: str
    workflow_id: str
    secret: str | None = field(default=None, repr=False)
    created_at: datetime | None = None  # set by the store


@dataclass(frozen=True, slots=True)
class Decision:
    """What a ``decide`` function tells its caller besides what it writes: the planner's
    decisions (``spane_py.engine.decisions``: ``Run``, ``Duplicate``, ``Settled``, ...)
    are its subclasses, one type each. The base itself tells nothing more."""


@dataclass(frozen=True, slots=True)
class Transition:
    """What a ``decide`` function wants written, atomically.

    ``nodes`` are node records to upsert; ``execution`` replaces the execution record when
    set; ``spans`` are added to the trace; ``enqueue`` names the nodes whose jobs the caller
    sends once the write committed; ``decision`` carries the decision back to the caller
    and is not stored.
    """

    nodes: tuple[NodeRecord, ...] = ()
    execution: ExecutionRecord | None = None
    enqueue: tuple[str, ...] = ()
    spans: tuple[SpanRecord, ...] = ()  # recorded with the write, atomically
    dlq: tuple[DlqRecord, ...] = ()  # dead-letter items, recorded with the write
    decision: Decision = Decision()

    @property
    def is_noop(self) -> bool:
        return not self.nodes and self.execution is None and not self.spans and not self.dlq


Decide = Callable[[ExecutionSnapshot], Transition]


@dataclass(frozen=True, slots=True)
class Recent:
    """What a caller of ``transition`` accepts instead of a read: a decision that writes
    nothing, made on the snapshot this process learned (wrote, read or created) after
    ``since`` (``time.monotonic()``), stands when ``stands(decision)`` holds."""

    since: float
    stands: Callable[[Transition], bool]


@dataclass(frozen=True, slots=True)
class WorkflowVersionRecord:
    workflow_id: str
    version: int
    definition: WorkflowDefinition
    content_hash: str
    created_at: datetime
    change_notes: str | None = None
    active: bool = True


@dataclass(frozen=True, slots=True)
class SavedWorkflow:
    record: WorkflowVersionRecord
    created: bool  # False: the latest version already had this content


@dataclass(frozen=True, slots=True)
class CreatedExecution:
    record: ExecutionRecord
    created: bool  # False: an execution with the same idempotency key existed


@dataclass(frozen=True, slots=True)
class LogRecord:
    execution_id: str
    level: str
    message: str
    timestamp: datetime
    node_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class PendingNode:
    """A node that holds or waits for a job: what the sweeper needs to send it again."""

    execution_id: str
    workflow_id: str
    workflow_version: int
    node_id: str
    generation: int
    priority: int | None


@dataclass(frozen=True, slots=True)
class ExecutionPage:
    items: tuple[ExecutionRecord, ...]
    next_cursor: str | None


@dataclass(frozen=True, slots=True)
class ArtifactRecord:
    """A named blob of an execution (``ctx.put_artifact``), without its bytes (the store
    returns those beside it): one per execution and name."""

    execution_id: str
    name: str
    content_type: str
    size: int  # bytes
    created_at: datetime
    node_id: str | None = None  # the node that put it


@dataclass(frozen=True, slots=True)
class EventRecord:
    """One engine event kept in the event history (``engine.get_events``): its stable name
    (``type``: ``node.completed``, ``execution.failed``, ... as in
    ``spane_py.observability.events``), the execution, workflow and node it is about (None
    where it is about none), when it was emitted, and its other fields (``attempt``,
    ``error``, ...)."""

    type: str
    at: datetime
    execution_id: str | None = None
    workflow_id: str | None = None
    node_id: str | None = None
    fields: Mapping[str, Any] = field(default_factory=dict)
