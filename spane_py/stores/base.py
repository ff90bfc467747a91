"""The ``ExecutionStore`` protocol and the records stores persist.

Stores persist and answer queries; they decide nothing. The one atomic primitive is
``transition(execution_id, decide)``: the store takes a consistent snapshot of the
execution (locking it against concurrent transitions), calls the pure ``decide`` function,
writes the ``Transition`` it returns, and commits. Every change to a running execution —
starting a node, completing one, claiming its children, settling the execution — goes
through it, so two workers finishing the parents of one join at the same moment cannot
both claim the join, and an execution's status settles exactly once.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

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
    # event wakes it) and what it waits for (JSON text, read by the runner's built-ins).
    wake_at: datetime | None = None
    wait: str | None = None

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
class Transition:
    """What a ``decide`` function wants written, atomically.

    ``nodes`` are node records to upsert; ``execution`` replaces the execution record when
    set; ``spans`` are added to the trace; ``enqueue`` names the nodes whose jobs the caller
    sends once the write committed; ``outcome`` and ``payload`` carry the decision back to
    the caller and are not stored.
    """

    nodes: tuple[NodeRecord, ...] = ()
    execution: ExecutionRecord | None = None
    enqueue: tuple[str, ...] = ()
    outcome: str = ""
    payload: Any = None
    spans: tuple[SpanRecord, ...] = ()  # recorded with the write, atomically
    dlq: tuple[DlqRecord, ...] = ()  # dead-letter items, recorded with the write

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


@runtime_checkable
class ExecutionStore(Protocol):
    """Persistence for definitions, executions, node results and logs.

    Behaviour every store shares (checked by tests/contract):

    * records returned share no mutable state with the store; node outputs and initial data
      come back as the same JSON values (0, false, "" and null intact), though not always
      as the same text: PostgreSQL's jsonb normalises whitespace and the order of keys;
    * ``create_execution``: an existing ``execution_id`` raises ``StatePersistenceError``;
      an existing ``(workflow_id, idempotency_key)`` returns ``created=False`` with the
      first record and writes nothing;
    * ``transition``: the snapshot is a copy; an exception from ``decide`` propagates and
      nothing is written; an execution record with another id raises ``ValueError``;
    * ``list_workflows`` is ordered by workflow id; ``list_executions`` newest first (by
      execution id, which is time-ordered), ``since`` inclusive, ``until`` exclusive, and
      ``next_cursor`` is None exactly when nothing follows; ``get_child_executions`` in
      creation order; a negative ``limit`` or ``offset`` raises ``ValueError``.
    """

    async def start(self) -> None:
        """Connect (and check the schema); idempotent. The engine calls it in ``start()``."""
        ...

    # Workflows -------------------------------------------------------------------
    async def save_workflow(
        self, definition: WorkflowDefinition, *, content_hash: str, change_notes: str | None
    ) -> SavedWorkflow: ...

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowVersionRecord | None: ...

    async def get_workflow_version(self, workflow_id: str) -> int | None: ...

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]: ...

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]: ...

    async def deactivate_workflow(self, workflow_id: str) -> bool: ...

    async def get_workflow_count(self, *, active_only: bool = True) -> int: ...

    # Executions ------------------------------------------------------------------
    async def create_execution(
        self,
        record: ExecutionRecord,
        nodes: Sequence[NodeRecord],
        *,
        idempotency_after: datetime | None = None,
    ) -> CreatedExecution:
        """With ``idempotency_after``, an execution holding the same key that was created
        before it no longer counts: the key is released from it (its ``idempotency_key``
        becomes None) and the new execution is created."""
        ...

    async def create_executions(
        self, items: Sequence[tuple[ExecutionRecord, Sequence[NodeRecord]]]
    ) -> None:
        """Several new executions (without idempotency keys) in one write; all or none."""
        ...

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None: ...

    async def find_execution_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        """The ids of the executions whose id starts with ``prefix`` (letters in either
        case), in id order, at most ``limit``: how a shortened id is resolved. No character
        of ``prefix`` is a wildcard; the empty prefix matches every execution; a negative
        ``limit`` raises ``ValueError``."""
        ...

    async def get_node_results(self, execution_id: str) -> dict[str, NodeRecord]: ...

    async def get_snapshot(self, execution_id: str) -> ExecutionSnapshot | None:
        """An execution and its node records, read together (None: no such execution)."""
        ...

    async def transition(
        self,
        execution_id: str,
        decide: Decide,
        *,
        cached: ExecutionSnapshot | None = None,
        recent: Recent | None = None,
    ) -> Transition:
        """Apply ``decide`` to the current snapshot, atomically. With ``cached`` (a snapshot
        an earlier transition of this caller saw), a store may first decide on it and write
        only if nothing changed since — saving a read; otherwise it reads and decides anew.
        With ``recent``, a store that keeps what this process learned of the execution may
        answer a decision that writes nothing from it, as ``Recent`` says (a store whose
        reads cost nothing ignores it).
        """
        ...

    async def update_execution_metadata(
        self, execution_id: str, metadata: Mapping[str, Any]
    ) -> None: ...

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage: ...

    async def get_execution_count(
        self, *, workflow_id: str | None = None, status: ExecutionStatus | None = None
    ) -> int: ...

    async def get_child_executions(self, execution_id: str) -> list[ExecutionRecord]: ...

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None: ...

    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        """Nodes of running executions whose job the sweeper sends again, oldest first:
        queued or running nodes queued (and, when running, started) before ``older_than``;
        waiting nodes whose ``wake_at`` is before it; waiting nodes whose child execution
        (``wait`` names it as ``{"child": id}``) ended before it."""
        ...

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime
    ) -> list[ExecutionRecord]:
        """Atomically (across processes): while fewer than ``limit`` executions of the
        workflow are running or paused, move the oldest ``queued`` ones to ``running``
        (``started_at=now``). Returns those it moved, oldest first."""
        ...

    async def list_queued_workflows(self) -> list[str]:
        """Ids of workflows that have executions in the ``queued`` status."""
        ...

    # Dead-letter queue -----------------------------------------------------------
    async def list_dlq_items(
        self, *, limit: int = 100, offset: int = 0, include_retried: bool = False
    ) -> list[DlqRecord]:
        """Newest first."""
        ...

    async def get_dlq_item(self, dlq_id: int) -> DlqRecord | None: ...

    async def mark_dlq_retried(self, dlq_id: int, at: datetime) -> bool:
        """False when the item does not exist or was retried already."""
        ...

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        """Delete items (failed before ``older_than``, or all); returns how many."""
        ...

    async def get_dlq_count(self, *, include_retried: bool = False) -> int: ...

    # Resume tokens ---------------------------------------------------------------
    async def save_token(self, record: ResumeTokenRecord) -> None: ...

    async def get_token(self, token: str) -> ResumeTokenRecord | None: ...

    async def list_tokens(
        self, *, execution_id: str | None = None, active_only: bool = True, now: datetime
    ) -> list[ResumeTokenRecord]:
        """Oldest first; ``active_only``: unused, unrevoked and unexpired at ``now``."""
        ...

    async def set_token_used(self, token: str, at: datetime) -> bool:
        """Mark an unused, unrevoked token used; False otherwise."""
        ...

    async def revoke_token(self, token: str, at: datetime) -> bool:
        """Mark an unused, unrevoked token revoked; False otherwise."""
        ...

    # Triggers --------------------------------------------------------------------
    async def sync_triggers(
        self,
        workflow_id: str,
        schedules: Sequence[ScheduleRecord],
        webhooks: Sequence[WebhookRecord],
    ) -> list[WebhookRecord]:
        """Atomically make the (saved) workflow's schedules and webhooks exactly these.

        A schedule stored under the same id keeps its ``created_at``, ``paused`` and
        ``last_tick`` (``missed`` is updated); a webhook already bound to this workflow gets
        the new secret; the workflow's other schedules and webhooks are deleted. A path and
        method bound to another workflow that is active is a conflict: nothing is written
        and the conflicting bindings are returned ([] on success); one bound to an inactive
        workflow passes to this one. An unknown workflow raises ``StatePersistenceError``.
        """
        ...

    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        """Ordered by ``schedule_id``."""
        ...

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None: ...

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, *, skip_until: datetime | None = None
    ) -> bool:
        """Pause or resume; with ``skip_until``, ``last_tick`` moves forward to it (never
        back), in the same write. False when there is no such schedule or it already was
        in that state."""
        ...

    async def advance_schedule(
        self, schedule_id: str, expected: datetime | None, last_tick: datetime
    ) -> bool:
        """Set ``last_tick`` if it still is ``expected`` (compare-and-set: of several
        processes that handled the same ticks, one wins). False otherwise."""
        ...

    async def delete_schedule(self, schedule_id: str) -> bool: ...

    async def list_webhooks(self, workflow_id: str | None = None) -> list[WebhookRecord]:
        """Ordered by path, then method."""
        ...

    async def get_webhook(self, path: str, method: str) -> WebhookRecord | None: ...

    # Logs ------------------------------------------------------------------------
    async def add_log(self, record: LogRecord) -> None: ...

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        """Several log lines at once, in order (logs of an unknown execution are dropped)."""
        ...

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]: ...

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        """The execution's trace: one span per node attempt, oldest first."""
        ...

    async def close(self) -> None: ...
