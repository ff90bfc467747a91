"""The store contract: ``ExecutionStore``, the union of one small protocol per area (the
records it speaks in live in ``spane_py.records`` and are re-exported here).

Stores persist and answer queries; they decide nothing. The one atomic primitive is
``transition(execution_id, decide)``: the store takes a consistent snapshot of the
execution (locking it against concurrent transitions), calls the pure ``decide`` function,
writes the ``Transition`` it returns, and commits. Every change to a running execution —
starting a node, completing one, claiming its children, settling the execution — goes
through it, so two workers finishing the parents of one join at the same moment cannot
both claim the join, and an execution's status settles exactly once.

The areas, each a protocol below with the behaviour ``tests/contract`` checks for it:

- ``StoreLifecycle``: start, close, ``shared``, ``describe`` (test_capabilities.py);
- ``DefinitionStore``: versioned workflow definitions (test_workflows.py);
- ``ExecutionStateStore``: executions, their node records, ``transition``
  (test_executions.py, test_idempotency.py, test_transition.py);
- ``BacklogStore``: the nodes the sweeper sends again, the admission of queued executions
  under ``max_concurrency`` and the limit per concurrency key (test_backlog.py,
  test_control.py);
- ``DlqStore``, ``TokenStore``: dead-letter items, resume tokens (test_control.py);
- ``TriggerStore``: schedules and webhook bindings (test_triggers.py);
- ``TraceStore``: logs and spans (test_logs.py, test_spans.py);
- ``ArtifactStore``, ``EventStore``: named blobs of executions, the event history
  (test_artifacts.py, test_events.py), in base_history.py;
- ``RetentionStore``: deleting expired executions (test_retention.py), in
  base_retention.py.

A third backend implements all of them (the engine takes an ``ExecutionStore``) and is
added to ``STORES`` in ``tests/contract/conftest.py``: passing that suite is the contract.
Where a rule is written both in Python (the in-memory store) and in SQL (PostgreSQL), the
docstring here is its one definition and a contract test pins it down: admission
(``BacklogStore.admit_queued``), the stale-node rule (``BacklogStore.list_pending_nodes``),
idempotency expiry (``ExecutionStateStore.create_execution``) and trigger conflicts
(``TriggerStore.sync_triggers``).

Shared by every area: records returned share no mutable state with the store (mutating one
changes nothing stored); node outputs, initial data and metadata come back as the same JSON
values (0, false, "" and null intact), though not always as the same text: PostgreSQL's
jsonb normalises whitespace and the order of keys; a negative ``limit`` or ``offset``
raises ``ValueError``. Ids, node ids and paths are ordered as text by code point (what
PostgreSQL does in a database whose collation is ``C`` or ``C.UTF-8``; another collation
may order mixed-case or non-ASCII text differently from the in-memory store).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from spane_py.definitions.models import WorkflowDefinition
from spane_py.execution_search import FieldMatch
from spane_py.records import (
    ArtifactRecord,
    CreatedExecution,
    Decide,
    DlqRecord,
    EventRecord,
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
from spane_py.stores.base_history import ArtifactStore, EventStore
from spane_py.stores.base_retention import PruneResult, RetentionStore

__all__ = [
    "ArtifactRecord",
    "ArtifactStore",
    "BacklogStore",
    "CreatedExecution",
    "Decide",
    "DefinitionStore",
    "DlqRecord",
    "DlqStore",
    "EventRecord",
    "EventStore",
    "ExecutionPage",
    "ExecutionRecord",
    "ExecutionSnapshot",
    "ExecutionStateStore",
    "ExecutionStore",
    "LogRecord",
    "NodeRecord",
    "PendingNode",
    "PruneResult",
    "Recent",
    "ResumeTokenRecord",
    "RetentionStore",
    "SavedWorkflow",
    "ScheduleRecord",
    "SpanRecord",
    "StoreLifecycle",
    "TokenStore",
    "TraceStore",
    "Transition",
    "TriggerStore",
    "WebhookRecord",
    "WorkflowVersionRecord",
    "evolve_execution",
]


@runtime_checkable
class StoreLifecycle(Protocol):
    """Starting, closing, and what a store says of itself (test_capabilities.py)."""

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

    async def close(self) -> None: ...


@runtime_checkable
class DefinitionStore(Protocol):
    """Versioned workflow definitions (test_workflows.py).

    Saving content whose hash equals the latest version's is a no-op (``created=False``);
    any other content, an older version's included, becomes the next version (1, 2, ...
    per workflow). Saving reactivates a deactivated workflow. A deactivated workflow has
    no latest version (``get_workflow(id)`` and ``get_workflow_version`` give None) but
    its versions stay readable by number. Definitions round-trip exactly and are never
    forgotten. ``list_workflows`` gives the latest version of each workflow, ordered by
    workflow id.
    """

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

    async def deactivate_workflow(self, workflow_id: str) -> bool:
        """False when the workflow is unknown or already inactive."""
        ...

    async def get_workflow_count(self, *, active_only: bool = True) -> int: ...


@runtime_checkable
class ExecutionStateStore(Protocol):
    """Executions and their node records: creating, reading, listing, and ``transition``,
    the one way a running execution changes (test_executions.py, test_idempotency.py,
    test_transition.py).

    * ``create_execution``: an existing ``execution_id`` raises ``StatePersistenceError``;
      an existing ``(workflow_id, idempotency_key)`` returns ``created=False`` with the
      first record and writes nothing (see ``create_execution`` for its expiry);
    * ``transition``: the snapshot is a copy; an exception from ``decide`` propagates and
      nothing is written; an execution record with another id raises ``ValueError``; an
      unknown execution raises ``ExecutionNotFoundError`` without calling ``decide``;
      concurrent transitions lose no update, and a join is claimed once;
    * ``list_executions`` newest first (by execution id, which is time-ordered), ``since``
      inclusive, ``until`` exclusive, and ``next_cursor`` is None exactly when nothing
      follows; ``get_child_executions`` in creation order.
    """

    async def create_execution(
        self,
        record: ExecutionRecord,
        nodes: Sequence[NodeRecord],
        *,
        idempotency_after: datetime | None = None,
    ) -> CreatedExecution:
        """Write a new execution and its first nodes, unless its idempotency key is held.

        Idempotency, the one definition (in Python and in SQL; pinned down by
        test_executions.py ``TestIdempotencyKey`` and test_idempotency.py): the key is held
        by the execution of the same workflow that has it (at most one does). Without
        ``idempotency_after`` the holder is returned (``created=False``), whatever its
        status, and nothing is written. With it, a holder created strictly before
        ``idempotency_after`` has expired: the key is released from it (its
        ``idempotency_key`` becomes None, the execution itself is kept) and the new
        execution is created and holds it; a holder created at or after
        ``idempotency_after`` is returned as above. Of concurrent creates with one key,
        exactly one creates.
        """
        ...

    async def create_executions(
        self, items: Sequence[tuple[ExecutionRecord, Sequence[NodeRecord]]]
    ) -> None:
        """Several new executions (without idempotency keys: ``ValueError``) in one write;
        all or none (a duplicate id raises ``StatePersistenceError``, writing nothing)."""
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
        """Apply ``decide`` to the current snapshot, atomically: the nodes, spans and
        dead-letter items of the ``Transition`` and the execution's new record are written
        together, or nothing is. With ``cached`` (a snapshot an earlier transition of this
        caller saw), a store may first decide on it and write only if nothing changed
        since — saving a read; otherwise it reads and decides anew. With ``recent``, a
        store that keeps what this process learned of the execution may answer a decision
        that writes nothing from it, as ``Recent`` says (a store whose reads cost nothing
        ignores it).
        """
        ...

    async def update_execution_metadata(
        self, execution_id: str, metadata: Mapping[str, Any]
    ) -> None:
        """Merge the keys into the execution's metadata (concurrent merges lose no key);
        an unknown execution raises ``ExecutionNotFoundError``."""
        ...

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
        """The executions that pass every filter given, newest first (test_listing.py):
        ``id_prefix`` as ``find_execution_ids``; ``waiting``: running, with a node
        waiting; ``where``: each ``FieldMatch`` holds (jsonb containment,
        ``spane_py.execution_search``); ``parent_ids``: children of these executions;
        ``roots_only``: executions without a parent. ``cursor`` is the last execution id
        of the page before (keyset: a page costs the same however deep)."""
        ...

    async def get_execution_count(
        self, *, workflow_id: str | None = None, status: ExecutionStatus | None = None
    ) -> int: ...

    async def get_child_executions(self, execution_id: str) -> list[ExecutionRecord]: ...

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None: ...


@runtime_checkable
class BacklogStore(Protocol):
    """The work that waits: nodes whose job the sweeper sends again, and queued executions
    waiting for a slot under their workflow's ``max_concurrency`` and its limit per
    concurrency key (test_backlog.py, test_control.py). Both rules are written twice, in
    Python and in SQL; the docstrings below are their one definition."""

    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        """Nodes whose job the sweeper sends again: the stale-node rule.

        Only nodes of executions whose status is ``running`` count. A node is pending
        *since* a time, by its status:

        * ``queued`` or ``running``: since the later of ``queued_at`` and ``started_at``
          (``started_at`` None: ``queued_at``); a node without ``queued_at`` never is;
        * ``waiting``: since the earlier of its ``wake_at`` (when set) and, when its
          ``wait_child`` names an execution that has ended (completed, failed or
          cancelled), that child's ``completed_at`` (its ``created_at`` when None);
          neither: never. ``wait_child`` naming no stored execution matches nothing. A
          node's ``wait`` JSON is never read by a store;
        * any other status: never.

        Returned: the nodes pending since strictly before ``older_than``, each once,
        ordered by (since, execution id, node id), at most ``limit``.
        """
        ...

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime, *, key_limit: int | None = None
    ) -> list[ExecutionRecord]:
        """Admission of queued executions under ``max_concurrency`` (``limit``) and, with
        ``key_limit``, under the workflow's limit per concurrency key.

        Atomically (across processes; concurrent admissions of one workflow never admit
        more than ``limit`` in all, nor more than ``key_limit`` of one key): let *active*
        be the workflow's executions whose status is ``running`` or ``paused`` (executions
        of other workflows or in other statuses do not count). Its ``queued`` executions
        are looked at oldest (by execution id) first, and one is admitted when

        * fewer than ``limit`` are active or admitted by this call, and
        * with ``key_limit``: its ``concurrency_key`` is None, or fewer than ``key_limit``
          of those active or admitted by this call have its ``concurrency_key``;

        otherwise it stays queued and the next one is looked at (a full key holds back
        only its own executions: FIFO per key). Without ``key_limit`` keys are not looked
        at. The admitted ones become ``running`` with ``started_at=now``; nothing else of
        them changes. Returns those, oldest first. A limit beyond any count (``2**63`` and
        more included) admits every queued one it applies to.
        """
        ...

    async def list_queued_workflows(self) -> list[str]:
        """Ids of workflows that have executions in the ``queued`` status, in order."""
        ...


@runtime_checkable
class DlqStore(Protocol):
    """Dead-letter items (test_control.py ``TestDeadLetters``). Items are written only by
    ``transition`` (``Transition.dlq``), with the rest of its write; the store gives each
    its ``dlq_id``."""

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


@runtime_checkable
class TokenStore(Protocol):
    """Resume tokens (test_control.py ``TestResumeTokens``): a token is used or revoked at
    most once, and never both."""

    async def save_token(self, record: ResumeTokenRecord) -> None:
        """An existing token raises ``StatePersistenceError``."""
        ...

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


@runtime_checkable
class TriggerStore(Protocol):
    """Schedules and webhook bindings of saved workflows (test_triggers.py)."""

    async def sync_triggers(
        self,
        workflow_id: str,
        schedules: Sequence[ScheduleRecord],
        webhooks: Sequence[WebhookRecord],
    ) -> list[WebhookRecord]:
        """Atomically make the (saved) workflow's schedules and webhooks exactly these.

        A schedule stored under the same id keeps its ``created_at``, ``paused`` and
        ``last_tick`` (``cron``, ``timezone`` and ``missed`` are updated); a webhook
        already bound to this workflow keeps its ``created_at`` and gets the new secret;
        the workflow's other schedules and webhooks are deleted. An unknown workflow
        raises ``StatePersistenceError``.

        Trigger conflicts, the one definition (in Python and in SQL): a path and method
        bound to another workflow whose latest state is active conflicts; one bound to an
        inactive (deactivated) workflow passes to this one. On any conflict nothing at
        all is written and the conflicting bindings, as stored, are returned ordered by
        path, then method; [] on success.
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


@runtime_checkable
class TraceStore(Protocol):
    """Logs and spans of executions (test_logs.py, test_spans.py). Spans are written only
    by ``transition`` (``Transition.spans``); a span id written twice is kept once."""

    async def add_log(self, record: LogRecord) -> None:
        """One log line (a log of an unknown execution is dropped)."""
        ...

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        """Several log lines at once, in order (logs of an unknown execution are dropped)."""
        ...

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]:
        """In the order written (not sorted on time); only ``node_id``'s when given."""
        ...

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        """The execution's trace: one span per node attempt, oldest first."""
        ...


@runtime_checkable
class ExecutionStore(
    StoreLifecycle,
    DefinitionStore,
    ExecutionStateStore,
    BacklogStore,
    DlqStore,
    TokenStore,
    TriggerStore,
    TraceStore,
    ArtifactStore,
    EventStore,
    RetentionStore,
    Protocol,
):
    """Persistence for definitions, executions, node results, the backlog, dead letters,
    resume tokens, triggers, logs, spans, artifacts, events and retention: every area's protocol at
    once (see the module docstring). The engine and users take this one."""
