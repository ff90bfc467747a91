"""What follows an execution's settling — waking waiters, the waiting parent node, dropping
its deadline — and the admission of queued executions. ``Lifecycle.settled`` is the
settling step of the effects that follow a committed decision (engine/effects.py).

Every step here is also redone by the sweeper when a process dies in the middle, so each
one is safe to run twice: sending a job that exists is a no-op, a parent node's job only
asks it to look at its child again, admission is atomic in the store.

Admission: an execution of a limited workflow (``max_concurrency``, ``concurrency`` per
key) waits as ``queued`` until both limits have room. It holds its slot while it is
running or paused — a worker that dies does not end it: it keeps its slot, and the sweeper
sends its nodes again — and frees it when it settles, which admits the next ones.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from spane_py._queue_names import DEFAULT_QUEUE
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import starting
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.notify import SettleNotifier
from spane_py.engine.resend import Resender
from spane_py.engine.routing import Routes
from spane_py.errors import SpaneError
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import DeadlineJob, NodeJob
from spane_py.records import ExecutionRecord
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionStore

logger = logging.getLogger("spane_py.engine")

# Admission when a workflow no longer sets max_concurrency: everything queued starts.
UNLIMITED = 1 << 30


class Lifecycle:
    def __init__(
        self,
        store: ExecutionStore,
        queue: JobQueue,
        cache: WorkflowCache,
        notifier: SettleNotifier,
        *,
        resender: Resender | None = None,
        clock: Clock = SYSTEM_CLOCK,
        routes: Routes | None = None,
    ) -> None:
        self.store = store
        self.routes = routes  # the queue of each node (None: every job to default)
        self.clock = clock
        self.queue = queue
        self.cache = cache
        self.notifier = notifier
        self.resender = resender

    async def settled(self, record: ExecutionRecord) -> None:
        """An execution completed, failed or was cancelled."""
        events.emit(events.EXECUTION_SPAN, logging.DEBUG, execution=record)
        await self.notifier.settled(record.execution_id)
        if record.parent_execution_id is not None:
            await self.wake_parent(record)
        pinned = await self.cache.get(record.workflow_id, record.workflow_version)
        if pinned.definition.timeout is not None:
            deadline = DeadlineJob(record.execution_id, record.workflow_id, record.workflow_version)
            # (and the id an older version gave it, for executions it started)
            await self.queue.remove(
                [self.queue.job_id(deadline), deadline.legacy_job_id(self.queue.prefix)]
            )
        if await self.limited(record.workflow_id):
            await self.admit(record.workflow_id)  # its slot (and its key's) is free

    async def wake_parent(self, child: ExecutionRecord) -> None:
        """Send the job of the sub-workflow node waiting for ``child``: it looks at the child
        and completes (or fails) with it."""
        assert child.parent_execution_id is not None
        parent = await self.store.get_snapshot(child.parent_execution_id)
        if parent is None or child.parent_node_id is None:
            return
        rec = parent.nodes.get(child.parent_node_id)
        if rec is None or rec.status.is_terminal:
            return
        of = parent.execution
        graph = await self.cache.get(of.workflow_id, of.workflow_version)
        job = NodeJob(
            of.execution_id,
            of.workflow_id,
            of.workflow_version,
            rec.node_id,
            rec.generation,
            wake=True,
            queue=self._queue(graph, rec.node_id),
        )
        await self.queue.enqueue([job], priority=parent.execution.priority)

    async def limited(self, workflow_id: str) -> bool:
        """Whether the workflow's latest version limits its executions (``max_concurrency``
        or ``concurrency``): they start through admission."""
        graph = await self._latest_graph(workflow_id)
        if graph is None:
            return False
        return graph.definition.max_concurrency is not None or (
            graph.definition.concurrency is not None
        )

    async def admit(self, workflow_id: str) -> int:
        """Start queued executions of ``workflow_id`` while it has room (``max_concurrency``
        and its limit per concurrency key, those of its latest version); returns how many
        started."""
        graph = await self._latest_graph(workflow_id)
        limit, key_limit = UNLIMITED, None
        if graph is not None:
            if graph.definition.max_concurrency is not None:
                limit = graph.definition.max_concurrency
            if graph.definition.concurrency is not None:
                key_limit = graph.definition.concurrency.max
        now = self.clock.now()
        admitted = await self.store.admit_queued(workflow_id, limit, now, key_limit=key_limit)
        # What each one waits for: its queued nodes (a new execution's entry nodes; a
        # retried one's nodes to run again).
        snapshots = await asyncio.gather(
            *(self.store.get_snapshot(r.execution_id) for r in admitted)
        )
        for record, snap in zip(admitted, snapshots, strict=True):
            if snap is None:
                continue
            pinned = await self.cache.get(record.workflow_id, record.workflow_version)
            # A retried execution has run before: its nodes to redo have a later generation.
            fresh = all(n.generation == 0 for n in snap.nodes.values())
            if fresh:
                events.emit(  # before the jobs: a worker may start a node while this waits
                    events.EXECUTION_STARTED,
                    execution_id=record.execution_id,
                    workflow_id=record.workflow_id,
                    version=record.workflow_version,
                )
            queued = [
                (n.node_id, n.generation)
                for n in snap.nodes.values()
                if n.status is NodeStatus.QUEUED
            ]
            send = functools.partial(self._send_jobs, record, pinned, queued, deadline=fresh)
            if self.resender is None:
                await send()
            else:  # admitted in the store: it runs, even if Redis refuses it now
                await self.resender.deliver(send, f"starting admitted {record.execution_id}")
        return len(admitted)

    async def _send_jobs(
        self,
        record: ExecutionRecord,
        pinned: WorkflowGraph,
        nodes: list[tuple[str, int]],
        *,
        deadline: bool,
    ) -> None:
        if deadline:
            now_ms = int(self.clock.now().timestamp() * 1000)
            await starting.send_deadlines(  # first: see starting
                self.queue, pinned, [record], start_ms=now_ms, routes=self.routes
            )
        await self.queue.enqueue(
            [
                NodeJob(
                    record.execution_id,
                    record.workflow_id,
                    record.workflow_version,
                    node_id,
                    generation,
                    queue=self._queue(pinned, node_id),
                )
                for node_id, generation in nodes
            ],
            priority=record.priority,
        )

    def _queue(self, graph: WorkflowGraph, node_id: str) -> str:
        return self.routes.node(graph, node_id) if self.routes is not None else DEFAULT_QUEUE

    async def admit_all(self) -> int:
        """Admission for every workflow with queued executions (the sweeper's round)."""
        started = 0
        for workflow_id in await self.store.list_queued_workflows():
            try:
                started += await self.admit(workflow_id)
            except SpaneError as exc:
                logger.warning("admitting executions of %s failed: %s", workflow_id, exc)
        return started

    async def _latest_graph(self, workflow_id: str) -> WorkflowGraph | None:
        version = await self.cache.latest_version(workflow_id)
        if version is None:
            return None
        return await self.cache.get(workflow_id, version)
