"""Building workers for an engine, and the sweeper they run."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime
from typing import Any, cast

from arq.worker import func

from spane_py.engine.cache import WorkflowCache
from spane_py.engine.runner import NodeRunner
from spane_py.errors import ConfigurationError
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import DEADLINE_NODE, FUNCTION_NAME, NodeJob
from spane_py.queue.presence import BEAT_INTERVAL_S, WorkerPresence
from spane_py.queue.worker import PeriodicTask, SpaneWorker
from spane_py.stores.base import ExecutionStore, PendingNode

logger = logging.getLogger("spane_py.engine")

# A node may run at most this long before arq itself gives up on it (node timeouts are
# enforced by the runner; this is only the outer bound).
MAX_NODE_RUNTIME_S = 24 * 3600


def build_worker(
    runner: NodeRunner,
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
) -> SpaneWorker:
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ConfigurationError(f"concurrency must be a positive integer, got {concurrency!r}")
    function = func(
        cast(Any, runner.job),
        name=FUNCTION_NAME,
        max_tries=1_000_000,  # attempts are the store's business, not arq's
        timeout=MAX_NODE_RUNTIME_S,
        keep_result=0,  # the store is the source of truth: arq keeps no results
    )

    async def sweeper() -> None:
        await sweep()

    return SpaneWorker(
        [function],
        job_queue=queue,
        lease_seconds=lease_seconds,
        queue_name=queue.keys.queue,
        redis_pool=queue.redis,
        burst=burst,
        handle_signals=handle_signals,
        shutdown_grace=shutdown_grace,
        periodic=[PeriodicTask("sweeper", sweep_interval, sweeper), *side_tasks],
        max_jobs=concurrency,
        poll_delay=poll_delay,
        keep_result=0,
        job_serializer=queue.redis.job_serializer,
        job_deserializer=queue.redis.job_deserializer,
        log_results=False,
        health_check_interval=BEAT_INTERVAL_S,
        presence=WorkerPresence(queue.redis, prefix=queue.prefix),
    )


async def sweep_pending(
    store: ExecutionStore,
    queue: JobQueue,
    *,
    older_than: datetime,
    limit: int,
    cache: WorkflowCache | None = None,
) -> int:
    """Send again the jobs of nodes queued or running since before ``older_than``; a job
    still in Redis is left alone. Returns how many were sent."""
    pending = await store.list_pending_nodes(older_than=older_than, limit=limit)
    by_priority: dict[int | None, list[NodeJob]] = {}
    for p in pending:
        by_priority.setdefault(p.priority, []).append(
            NodeJob(p.execution_id, p.workflow_id, p.workflow_version, p.node_id, p.generation)
        )
    sent = 0
    for priority, jobs in by_priority.items():
        sent += await queue.enqueue(jobs, priority=priority)
    if sent:
        logger.warning("sweeper: sent %d lost job(s) again", sent)
    if cache is not None:
        await _resend_deadlines(store, queue, cache, pending)
    return sent


async def _resend_deadlines(
    store: ExecutionStore, queue: JobQueue, cache: WorkflowCache, pending: list[PendingNode]
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
            [NodeJob(p.execution_id, p.workflow_id, p.workflow_version, DEADLINE_NODE)],
            priority=p.priority,
            due_ms=int(started.timestamp() * 1000) + timeout,
        )
