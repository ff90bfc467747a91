"""``WorkflowEngine``'s worker methods: running workers in this process, the sweeper,
retention (``prune``, the side task ``retention``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from redis.exceptions import RedisError

from spane_py._queue_names import DEFAULT_QUEUE, check_queue_name
from spane_py.clock import SkippingClock
from spane_py.engine import threads as node_threads
from spane_py.engine.core import EngineCore
from spane_py.engine.observing import scoped
from spane_py.engine.pruning import prune_expired
from spane_py.engine.queue_view import queue_infos
from spane_py.engine.routing import Routes
from spane_py.engine.workers import build_worker, sweep_pending, warn_if_not_durable
from spane_py.errors import (
    ConfigurationError,
    ExecutionNotFoundError,
    SpaneError,
)
from spane_py.observability import events
from spane_py.queue.jobs import NodeJob
from spane_py.queue.presence import WorkerPresence
from spane_py.queue.scheduled import make_due
from spane_py.queue.worker import PeriodicTask, SpaneWorker
from spane_py.stores.base import PruneResult
from spane_py.triggers.scheduler import Scheduler

logger = logging.getLogger("spane_py.engine")
# The sweeper warns of a queue that jobs wait on with no worker at most this often.
UNSERVED_WARN_INTERVAL_S = 300.0


class WorkerMethods(EngineCore):
    def _make_worker(
        self,
        concurrency: int,
        *,
        burst: bool,
        handle_signals: bool,
        skip_to: Callable[[int], Awaitable[bool]] | None = None,
        queues: Sequence[str] | None = None,
    ) -> SpaneWorker:
        if self.threads is not None:
            node_threads.configure(self.threads)
        if self.producer_only:
            raise ConfigurationError(
                "this engine is producer_only: it enqueues, and runs no worker (its registry "
                "need not hold the executors); build the workers' engine without it"
            )
        return build_worker(
            self._parts().dispatch,
            self.queue,
            concurrency=concurrency,
            burst=burst,
            handle_signals=handle_signals,
            lease_seconds=self.lease_seconds,
            shutdown_grace=self.shutdown_grace,
            poll_delay=self.poll_delay,
            sweep=self.sweep,
            sweep_interval=self.sweep_interval_seconds,
            side_tasks=() if burst else (self._scheduler_task(), self._retention_task()),
            skip_to=skip_to,
            queues=self._served(queues),
        )

    def default_queues(self) -> list[str]:
        """The queues a worker of this engine consumes unless told otherwise: those of the
        node types its registry runs, and those its registered workflows send the nodes it
        can run to (built-ins included); ``default`` when that is nothing."""
        found = set(self.registry.queues())
        routes = Routes(self.registry)
        for graph in self._registered.values():
            for node in graph.nodes.values():
                if node.type in self.registry:  # registered here, or built in
                    found.add(routes.node(graph, node.id))
        return sorted(found) or [DEFAULT_QUEUE]

    def _served(self, queues: Sequence[str] | None) -> tuple[str, ...]:
        if queues is None:
            return tuple(self.default_queues())
        if isinstance(queues, str | bytes):
            raise ConfigurationError(f"queues must be a list of queue names, not {queues!r}")
        try:
            served = tuple(dict.fromkeys(check_queue_name(q) for q in queues))
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from None
        if not served:
            raise ConfigurationError("a worker needs at least one queue to consume")
        return served

    def _scheduler_task(self) -> PeriodicTask:
        scheduler = Scheduler(
            self.store,
            self._start_triggered,
            self._is_active,
            grace_seconds=self.schedule_grace_seconds,
            refresh_seconds=self.schedule_refresh_seconds,
            clock=self.clock.now,
        )
        return PeriodicTask(
            "scheduler",
            self.schedule_refresh_seconds,
            scheduler.run_once,
            first_delay=0.0,
            wake=self._triggers_changed,
        )

    def _retention_task(self) -> PeriodicTask:
        async def prune() -> None:
            await self.prune()

        return PeriodicTask("retention", self.retention_interval_seconds, prune)

    @scoped
    async def prune(self, *, dry_run: bool = False) -> PruneResult:
        """Delete the finished executions whose time is up, by ``retention`` and each
        workflow's own (``docs/retention.md``), in batches; what went (``dry_run``: what
        would go, deleting nothing). Workers run it every ``retention_interval_seconds``."""
        await self.start()
        return await prune_expired(
            self.store, self.retention, self.clock.now(), dry_run=dry_run, archive=self.archive
        )

    async def get_archived_execution(self, execution_id: str) -> dict[str, Any] | None:
        """An execution retention archived (``archive_dir``) and deleted, read back as
        archived: ``{"execution", "nodes", "logs", "spans", "events", "artifacts",
        "archived_at"}``; None when it is not in the archive (or there is none)."""
        if self.archive is None:
            return None
        return await self.archive.read(execution_id)

    async def start_workers(
        self, concurrency: int = 10, *, queues: Sequence[str] | None = None
    ) -> None:
        """Run a worker inside this process (development and tests), consuming ``queues``
        (default: ``default_queues()``)."""
        await self.start()
        await self._check_durability()
        worker = self._make_worker(concurrency, burst=False, handle_signals=False, queues=queues)
        self._listen_for_cancels()
        task = asyncio.create_task(self._run_scoped(worker), name="spane-worker")
        self._workers.append((worker, task))

    async def run_worker(
        self, concurrency: int = 10, *, burst: bool = False, queues: Sequence[str] | None = None
    ) -> None:
        """Run a worker in the foreground until SIGINT/SIGTERM (or, with ``burst``, until
        the queue is empty), consuming ``queues`` (default: ``default_queues()``). This is
        what ``spane worker`` calls."""
        await self.start()
        await self._check_durability()
        worker = self._make_worker(
            concurrency, burst=burst, handle_signals=not burst, queues=queues
        )
        self._listen_for_cancels()
        with contextlib.suppress(asyncio.CancelledError):
            await self._run_scoped(worker)

    async def _check_durability(self) -> None:
        """Warn (once per engine) when the store's database can lose acknowledged commits
        (PostgreSQL's ``synchronous_commit = off``): see docs/deploying.md."""
        if not self._durability_checked:
            self._durability_checked = True
            await warn_if_not_durable(self.store)

    async def _run_scoped(self, worker: SpaneWorker) -> None:
        """Run ``worker``; the events of its jobs belong to this engine."""
        with events.scope(self):
            await worker.run()

    def _listen_for_cancels(self) -> None:
        parts = self._parts()
        parts.channel.listen(parts.runner.cancel_local)
        self.traffic.listen()  # holds from ctx.rate_limit in other processes

    async def run_until_idle(
        self,
        concurrency: int = 10,
        *,
        skip_time: bool = False,
        queues: Sequence[str] | None = None,
    ) -> None:
        """Process jobs until nothing is queued, scheduled or running (deterministic tests).

        With ``skip_time`` (the engine's ``clock`` must be a ``SkippingClock``), whenever
        nothing runs and only scheduled jobs are left — a ``delay``, a retry's backoff, a
        ``wait`` node's timeout, an execution's deadline — the clock skips to the first
        one's due time and it runs at once: a test of a one-hour delay takes milliseconds.
        ``clock.skipped`` tells how far it went. What Redis times on its own clock (rate
        limits, breakers) is not skipped: a node held by one waits in real time.
        """
        skip_to = None
        if skip_time:
            clock = self.clock
            if not isinstance(clock, SkippingClock):
                raise ConfigurationError(
                    "run_until_idle(skip_time=True) needs an engine built with "
                    f"clock=SkippingClock() (spane_py.clock), not {clock!r}"
                )

            async def skip_to(due_ms: int) -> bool:
                # A millisecond past the due time: due times are whole milliseconds.
                clock.skip_to(datetime.fromtimestamp((due_ms + 1) / 1000, UTC))
                return await make_due(self.queue, int(clock.now().timestamp() * 1000)) > 0

        await self.start()
        await self._check_durability()
        worker = self._make_worker(
            concurrency, burst=True, handle_signals=False, skip_to=skip_to, queues=queues
        )
        self._listen_for_cancels()
        await self._run_scoped(worker)

    @scoped
    async def sweep(self, *, older_than: datetime | None = None, limit: int = 500) -> int:
        """Send again the jobs of nodes that have waited (or run) since ``older_than``
        (default: ``stale_after_seconds`` ago) — the outbox's second half: a child claimed
        in the store whose job never reached Redis, or a Redis that lost its data. A job
        still in Redis is left alone. Returns how many jobs were sent. Workers run this
        every ``sweep_interval_seconds``."""
        cutoff = older_than or self.clock.now() - timedelta(seconds=self.stale_after_seconds)
        sent = await sweep_pending(
            self.store,
            self.queue,
            older_than=cutoff,
            limit=limit,
            cache=self.cache,
            routes=self._parts().routes,
        )
        await self.lifecycle.admit_all()  # an admission lost with a process
        await self._warn_unserved()
        return sent

    async def _warn_unserved(self) -> None:
        """Log (once every ``UNSERVED_WARN_INTERVAL_S`` per queue) the queues that jobs wait
        on while no live worker consumes them: their nodes wait until one starts."""
        try:
            workers = await WorkerPresence(self.queue.redis, prefix=self.key_prefix).live()
            queues = queue_infos(await self.queue.lane_stats(), workers)
        except (SpaneError, RedisError) as exc:
            logger.debug("could not read the queues: %s", exc)
            return
        now = time.monotonic()
        for q in queues:
            last = self._unserved_warned.get(q.name)
            if q.unserved and (last is None or now - last >= UNSERVED_WARN_INTERVAL_S):
                self._unserved_warned[q.name] = now
                logger.warning(
                    "%d job(s) wait on queue %r and no live worker consumes it: start one "
                    "(spane worker APP --queues %s)",
                    q.queued,
                    q.name,
                    q.name,
                )

    async def resend_node(self, execution_id: str, node_id: str) -> None:
        """Send a node's job again (what a duplicate delivery or a sweeper does)."""
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        nodes = await self.store.get_node_results(execution_id)
        generation = nodes[node_id].generation if node_id in nodes else 0
        graph = await self.cache.get(record.workflow_id, record.workflow_version)
        lane = self._parts().routes.node(graph, node_id)
        await self.queue.enqueue(
            [
                NodeJob(
                    execution_id,
                    record.workflow_id,
                    record.workflow_version,
                    node_id,
                    generation,
                    queue=lane,
                )
            ],
            priority=record.priority,
        )
