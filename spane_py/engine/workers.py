"""Building workers for an engine, and the sweeper they run."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from spane_py._queue_names import DEFAULT_QUEUE
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.routing import Routes
from spane_py.errors import ConfigurationError
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import DeadlineJob, NodeJob
from spane_py.queue.presence import WorkerPresence
from spane_py.queue.worker import Handler, PeriodicTask, SpaneWorker
from spane_py.records import PendingNode
from spane_py.stores.base import ExecutionStore

logger = logging.getLogger("spane_py.engine")
worker_logger = logging.getLogger("spane_py.worker")

# The ``event`` of the warning below, in the ``extra`` of its log record (the shape of
# spane_py's event log records: ``event`` and ``spane_fields``).
STORE_NOT_DURABLE = "store.not_durable"


@runtime_checkable
class ReportsDurability(Protocol):
    """A store that can tell whether its database may lose acknowledged commits
    (``PostgresExecutionStore``); the in-memory store loses everything anyway."""

    async def durability_warnings(self) -> list[str]: ...


async def warn_if_not_durable(store: ExecutionStore) -> list[str]:
    """Log a warning for each setting of the store's database that can lose commits it
    acknowledged (PostgreSQL's ``synchronous_commit = off``, ``fsync = off``); returns
    them. Workers call it when they start. A check that fails is logged and skipped: it
    never keeps a worker from starting."""
    if not isinstance(store, ReportsDurability):
        return []
    try:
        problems = await store.durability_warnings()
    except Exception as exc:
        worker_logger.info("could not read the store's durability settings: %s", exc)
        return []
    for problem in problems:
        worker_logger.warning(
            "worker start: %s",
            problem,
            extra={"event": STORE_NOT_DURABLE, "spane_fields": {"problem": problem}},
        )
    return problems


def build_worker(
    handler: Handler,
    queue: JobQueue,
    *,
    concurrency: int,
    burst: bool,
    handle_signals: bool,
    lease_seconds: float,
    shutdown_grace: float,
    poll_delay: float,
    sweep: Callable[[], Awaitable[Any]],
    sweep_interval: float,
    side_tasks: Sequence[PeriodicTask] = (),
    skip_to: Callable[[int], Awaitable[bool]] | None = None,
    queues: Sequence[str] = (DEFAULT_QUEUE,),
) -> SpaneWorker:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive integer, got {concurrency!r}")

    async def sweeper() -> None:
        await sweep()

    return SpaneWorker(
        handler,
        job_queue=queue,
        concurrency=concurrency,
        lease_seconds=lease_seconds,
        shutdown_grace=shutdown_grace,
        poll_delay=poll_delay,
        burst=burst,
        handle_signals=handle_signals,
        periodic=[PeriodicTask("sweeper", sweep_interval, sweeper), *side_tasks],
        presence=WorkerPresence(queue.redis, prefix=queue.prefix),
        skip_to=skip_to,
        queues=queues,
    )


async def sweep_pending(
    store: ExecutionStore,
    queue: JobQueue,
    *,
    older_than: datetime,
    limit: int,
    cache: WorkflowCache,
    routes: Routes,
) -> int:
    """Send again the jobs of nodes queued or running since before ``older_than``; a job
    still in Redis is left alone. Returns how many were sent."""
    pending = await store.list_pending_nodes(older_than=older_than, limit=limit)
    by_priority: dict[int | None, list[NodeJob]] = {}
    for p in pending:
        graph = await cache.get(p.workflow_id, p.workflow_version)
        by_priority.setdefault(p.priority, []).append(
            NodeJob(
                p.execution_id,
                p.workflow_id,
                p.workflow_version,
                p.node_id,
                p.generation,
                queue=routes.node(graph, p.node_id),
            )
        )
    sent = 0
    for priority, jobs in by_priority.items():
        sent += await queue.enqueue(jobs, priority=priority)
    if sent:
        logger.warning("sweeper: sent %d lost job(s) again", sent)
    await _resend_deadlines(store, queue, cache, pending, routes)
    return sent


async def _resend_deadlines(
    store: ExecutionStore,
    queue: JobQueue,
    cache: WorkflowCache,
    pending: list[PendingNode],
    routes: Routes,
) -> None:
    """A Redis that lost the node jobs lost the deadline jobs too: send those of the swept
    executions again, due when their timeout runs out (a no-op where they still exist)."""
    seen: set[str] = set()
    for p in pending:
        if p.execution_id in seen:
            continue
        seen.add(p.execution_id)
        graph = await cache.get(p.workflow_id, p.workflow_version)
        timeout = graph.definition.timeout
        if timeout is None:
            continue
        record = await store.get_execution(p.execution_id)
        if record is None or record.status.is_terminal:
            continue
        started = record.started_at or record.created_at
        await queue.enqueue(
            [
                DeadlineJob(
                    p.execution_id,
                    p.workflow_id,
                    p.workflow_version,
                    queue=routes.deadline(graph),
                )
            ],
            priority=p.priority,
            due_ms=int(started.timestamp() * 1000) + timeout,
        )
