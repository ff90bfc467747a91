"""The ``ExecutionStore`` protocol (the records it speaks in live in ``spane_py.records``
and are re-exported here).

Stores persist and answer queries; they decide nothing. The one atomic primitive is
``transition(execution_id, decide)``: the store takes a consistent snapshot of the
execution (locking it against concurrent transitions), calls the pure ``decide`` function,
writes the ``Transition`` it returns, and commits. Every change to a running execution —
starting a node, completing one, claiming its children, settling the execution — goes
through it, so two workers finishing the parents of one join at the same moment cannot
both claim the join, and an execution's status settles exactly once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from spane_py.definitions.models import WorkflowDefinition
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
    ScheduleRecord,
    SpanRecord,
    Transition,
    WebhookRecord,
    WorkflowVersionRecord,
    evolve_execution,
)
from spane_py.state import ExecutionStatus

__all__ = [
    "CreatedExecution",
    "Decide",
    "DlqRecord",
    "ExecutionPage",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "ExecutionStore",
    "LogRecord",
    "NodeRecord",
    "PendingNode",
    "Recent",
    "ResumeTokenRecord",
    "SavedWorkflow",
    "ScheduleRecord",
    "SpanRecord",
    "Transition",
    "WebhookRecord",
    "WorkflowVersionRecord",
    "evolve_execution",
]


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

    # Capabilities ------------------------------------------------------------------
    @property
    def shared(self) -> bool:
        """Whether other processes see what this store holds (a database server), or only
        this process does (its memory): cross-process waits and warnings depend on it."""
        ...

    def describe(self) -> str:
        """One line naming where the data lives, for logs and the CLI (no password)."""
        ...

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
