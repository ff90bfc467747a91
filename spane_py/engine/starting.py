"""Starting executions: checks first, then one write to the store, then the entry jobs.

Everything a caller gives is checked before anything is written, so a refused enqueue
leaves no execution behind. Once the store has committed, the execution will run: entry
jobs that Redis refuses are sent again in the background (``resend.Resender``), and the
enqueue returns the id.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from spane_py import _json
from spane_py._queue_names import DEFAULT_QUEUE
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import is_valid_workflow_id
from spane_py.engine import planner
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.ids import new_execution_id
from spane_py.engine.options import check_delay, check_idempotency_key, check_priority
from spane_py.engine.resend import Resender
from spane_py.engine.routing import Routes
from spane_py.errors import InvalidEnqueueOptionsError, WorkflowNotFoundError
from spane_py.limits import DEFAULT_LIMITS, Limits, encode_payload
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import DeadlineJob, NodeJob
from spane_py.records import ExecutionRecord, NodeRecord
from spane_py.state import ExecutionStatus
from spane_py.stores.base import ExecutionStore

# The longest concurrency key value (UTF-8 bytes of its JSON text): keys are indexed.
MAX_CONCURRENCY_KEY_BYTES = 1024


@dataclass(frozen=True, slots=True)
class Start:
    """What every execution started by one call shares."""

    workflow_id: str
    version: int
    graph: WorkflowGraph
    priority: int | None
    delay_s: float
    metadata: dict[str, Any]
    limits: Limits = DEFAULT_LIMITS
    clock: Clock = SYSTEM_CLOCK  # the engine's
    routes: Routes | None = None  # the queue of each node (None: every job to default)

    @property
    def limited(self) -> bool:
        """The workflow caps concurrent executions (``max_concurrency``, or per key with
        ``concurrency``): new ones wait as ``queued`` for admission."""
        defn = self.graph.definition
        return defn.max_concurrency is not None or defn.concurrency is not None

    def concurrency_key(self, initial: str) -> str | None:
        """The concurrency key value of a new execution with this input (JSON text) under
        the workflow's limit per key (None: no such limit). A path missing from the input
        or the metadata, or a value too long to index, raises ``InvalidEnqueueOptionsError``."""
        limit = self.graph.definition.concurrency
        if limit is None:
            return None
        key = limit.key_of(_json.loads(initial), self.metadata)
        where = "metadata" if limit.key.startswith("metadata.") else "input"
        if key is None:
            raise InvalidEnqueueOptionsError(
                f"workflow {self.workflow_id!r} limits concurrency per {limit.key!r}, and "
                f"the execution's {where} has no value there",
                workflow_id=self.workflow_id,
            )
        if len(key.encode()) > MAX_CONCURRENCY_KEY_BYTES:
            raise InvalidEnqueueOptionsError(
                f"workflow {self.workflow_id!r}: the concurrency key at {limit.key!r} is "
                f"{len(key.encode())} bytes of JSON, over the limit of "
                f"{MAX_CONCURRENCY_KEY_BYTES}",
                workflow_id=self.workflow_id,
            )
        return key

    @property
    def due(self) -> datetime | None:
        """When a deferred start is due (None: now)."""
        if not self.delay_s:
            return None
        return self.clock.now() + timedelta(seconds=self.delay_s)

    def record(
        self,
        initial: str,
        now: datetime,
        idempotency_key: str | None,
        *,
        execution_id: str | None = None,
        parent: ExecutionRecord | None = None,
        parent_node_id: str | None = None,
    ) -> ExecutionRecord:
        limited = self.limited
        return ExecutionRecord(
            execution_id=execution_id or new_execution_id(),
            workflow_id=self.workflow_id,
            workflow_version=self.version,
            status=ExecutionStatus.QUEUED if limited else ExecutionStatus.RUNNING,
            created_at=now,
            started_at=None if limited else now,
            initial_data=initial,
            metadata=self.metadata,
            priority=self.priority,
            idempotency_key=idempotency_key,
            parent_execution_id=parent.execution_id if parent is not None else None,
            parent_node_id=parent_node_id,
            depth=parent.depth + 1 if parent is not None else 0,
            concurrency_key=self.concurrency_key(initial),
        )

    def first_nodes(self, now: datetime) -> list[NodeRecord]:
        return planner.initial_nodes(self.graph, now, due=self.due)

    async def send_entry_jobs(
        self,
        queue: JobQueue,
        records: Sequence[ExecutionRecord],
        admit: Admit,
        resender: Resender | None = None,
    ) -> None:
        """Entry jobs of new executions; a limited workflow's wait for admission instead.
        With a ``resender``, what Redis refuses is sent again in the background (without
        one, the ``QueueError`` is raised)."""
        what = f"starting {len(records)} execution(s) of {self.workflow_id!r}"
        if self.limited:
            await _deliver(resender, functools.partial(admit, self.workflow_id), what)
            return
        due = _ms(self.clock.now()) + int(self.delay_s * 1000) if self.delay_s else None
        # Before the jobs go out: a worker may start a node while this call still waits.
        for r in records:
            events.emit(
                events.EXECUTION_STARTED,
                execution_id=r.execution_id,
                workflow_id=self.workflow_id,
                version=self.version,
            )

        sends = 0
        routes = self.routes

        async def send() -> None:
            # The deadlines first: an execution that ends before they are sent would keep
            # its deadline job (its end takes the job out of the queue).
            nonlocal sends
            sends += 1
            await send_deadlines(
                queue, self.graph, records, start_ms=due or _ms(self.clock.now()), routes=routes
            )
            await queue.enqueue(
                [
                    # Sent again after a refusal, a job may be a copy of one that ran.
                    NodeJob(
                        r.execution_id,
                        self.workflow_id,
                        self.version,
                        n,
                        first=sends == 1,
                        queue=routes.node(self.graph, n) if routes else DEFAULT_QUEUE,
                    )
                    for r in records
                    for n in self.graph.entry_nodes
                ],
                priority=self.priority,
                due_ms=due,
            )

        await _deliver(resender, send, what)


async def _deliver(
    resender: Resender | None, send: Callable[[], Awaitable[object]], what: str
) -> None:
    if resender is None:
        await send()
    else:
        await resender.deliver(send, what)


Admit = Callable[[str], Awaitable[int]]


async def send_deadlines(
    queue: JobQueue,
    graph: WorkflowGraph,
    records: Sequence[ExecutionRecord],
    *,
    start_ms: int,
    routes: Routes | None,
) -> None:
    """The deadline jobs of executions whose workflow has a ``timeout``: due that long after
    they start (``start_ms``, in ms since the epoch), they fail the execution if it is still
    going."""
    timeout = graph.definition.timeout
    if timeout is None or not records:
        return
    due = start_ms + timeout
    lane = routes.deadline(graph) if routes is not None else DEFAULT_QUEUE
    await queue.enqueue(
        [
            DeadlineJob(r.execution_id, r.workflow_id, r.workflow_version, queue=lane)
            for r in records
        ],
        priority=records[0].priority,
        due_ms=due,
    )


async def prepare(
    cache: WorkflowCache,
    workflow_id: str,
    *,
    priority: int | None,
    delay: float | timedelta | None,
    metadata: Mapping[str, Any] | None,
    limits: Limits = DEFAULT_LIMITS,
    clock: Clock = SYSTEM_CLOCK,
    routes: Routes | None = None,
    version: int | None = None,
) -> Start:
    """The version (default: the latest), its graph and the checked options (nothing
    written)."""
    if not isinstance(workflow_id, str) or not is_valid_workflow_id(workflow_id):
        raise WorkflowNotFoundError(
            f"{workflow_id!r} is not a valid workflow id", workflow_id=str(workflow_id)
        )
    if version is not None and (
        isinstance(version, bool) or not isinstance(version, int) or version < 1
    ):
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: version must be a positive integer, got {version!r}",
            workflow_id=workflow_id,
        )
    latest = await cache.latest_version(workflow_id)
    if latest is None:
        raise WorkflowNotFoundError(
            f"workflow {workflow_id!r} is not registered (or was deactivated)",
            workflow_id=workflow_id,
        )
    if version is None:
        version = latest
    elif version > latest:
        raise WorkflowNotFoundError(
            f"workflow {workflow_id!r} has no version {version} (the latest is {latest})",
            workflow_id=workflow_id,
        )
    graph = await cache.get(workflow_id, version)
    defn = graph.definition
    checked_priority = check_priority(
        priority if priority is not None else defn.priority, workflow_id
    )
    delay_s = check_delay(delay, workflow_id, default_ms=defn.delay)
    if metadata is not None and not isinstance(metadata, Mapping):
        raise InvalidEnqueueOptionsError(
            f"workflow {workflow_id!r}: metadata must be a mapping, got {type(metadata).__name__}",
            workflow_id=workflow_id,
        )
    meta = dict(metadata or {})
    encode_payload(meta, what=f"the metadata for workflow {workflow_id!r}", limits=limits)
    return Start(
        workflow_id, version, graph, checked_priority, delay_s, meta, limits, clock, routes
    )


async def start_one(
    store: ExecutionStore,
    queue: JobQueue,
    start: Start,
    initial_data: Any,
    idempotency_key: str | None,
    admit: Admit,
    *,
    idempotency_ttl_s: float | None = None,
    resender: Resender | None = None,
) -> str:
    check_idempotency_key(idempotency_key, start.workflow_id)
    initial = encode_payload(
        initial_data,
        what=f"the initial data for workflow {start.workflow_id!r}",
        limits=start.limits,
    )
    now = start.clock.now()
    record = start.record(initial, now, idempotency_key)
    after = None if idempotency_ttl_s is None else now - timedelta(seconds=idempotency_ttl_s)
    created = await store.create_execution(record, start.first_nodes(now), idempotency_after=after)
    if not created.created:
        return created.record.execution_id
    await start.send_entry_jobs(queue, [record], admit, resender)
    return record.execution_id


async def start_many(
    store: ExecutionStore,
    queue: JobQueue,
    start: Start,
    inputs: Sequence[Any],
    admit: Admit,
    *,
    resender: Resender | None = None,
) -> list[str]:
    if isinstance(inputs, str | bytes | Mapping) or not isinstance(inputs, Sequence):
        raise InvalidEnqueueOptionsError(
            f"workflow {start.workflow_id!r}: inputs must be a sequence of initial data, one "
            f"per execution, got {type(inputs).__name__}",
            workflow_id=start.workflow_id,
        )
    texts = [
        encode_payload(
            item,
            what=f"initial data #{i} for workflow {start.workflow_id!r}",
            limits=start.limits,
        )
        for i, item in enumerate(inputs)
    ]
    if not texts:
        return []
    now = start.clock.now()
    first_nodes = start.first_nodes(now)
    records = [start.record(text, now, None) for text in texts]
    await store.create_executions([(r, first_nodes) for r in records])
    await start.send_entry_jobs(queue, records, admit, resender)
    return [r.execution_id for r in records]


def _ms(when: datetime) -> int:
    """``when`` in milliseconds since the epoch (the queue's due times)."""
    return int(when.timestamp() * 1000)
