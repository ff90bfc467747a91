"""What follows a committed decision, in one place: the jobs it calls for (a completed
node's children, what a duplicate sends again, the wake-ups of a resume or a retry), the
events and the control epoch it announces, the stopping of a stopped execution's running
nodes, and the settling of the execution.

The runner (``NodeEffects``) and control (``ControlEffects``) call these after their store
transitions; nothing here calls the runner, control or the built-ins back. The settling
itself (waiters, the waiting parent, the deadline, admission) is the ``settled`` hook,
``Lifecycle.settled``.

Every step is safe to run twice, as a process may die between the write and its effects
and a redelivery (or the sweeper) redoes them: sending a job that exists is a no-op, and
settling again only wakes whoever still waits.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from typing import assert_never

from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.decisions import (
    Duplicate,
    Recorded,
    Refused,
    Resend,
    Settled,
    Stopped,
    Wakeup,
    completion_decision,
)
from spane_py.engine.notify import ControlChannel
from spane_py.engine.routing import Routes
from spane_py.errors import QueueError
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import NodeJob
from spane_py.records import ExecutionRecord, Transition
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore

logger = logging.getLogger("spane_py.engine")

SettledHook = Callable[[ExecutionRecord], Awaitable[None]]

_NODE_EVENTS = {
    NodeStatus.SUCCEEDED: events.NODE_COMPLETED,
    NodeStatus.FAILED: events.NODE_FAILED,
    NodeStatus.SKIPPED: events.NODE_SKIPPED,
}


class NodeEffects:
    """What follows a node's completion (or a duplicate of it): its events, its children's
    jobs, the settling of its execution."""

    def __init__(
        self, store: ExecutionStore, queue: JobQueue, settled: SettledHook, routes: Routes
    ) -> None:
        self.store = store
        self.queue = queue
        self.settled = settled
        self.routes = routes  # the queue of each node's jobs

    async def completed(
        self,
        execution: ExecutionRecord,
        node_id: str,
        status: NodeStatus,
        error: str | None,
        done: Transition,
        graph: WorkflowGraph,
        *,
        wait: bool = True,
    ) -> None:
        """What follows a completion's write (``plan_completion``, ``plan_event``): events,
        the children's jobs, the settling. ``wait=False``: the children's jobs go out with
        this event-loop tick's Redis call without being awaited here (a worker ends the
        job's delivery in the same call)."""
        eid = execution.execution_id

        def job(child: str, generation: int) -> NodeJob:
            return NodeJob(
                eid,
                execution.workflow_id,
                execution.workflow_version,
                child,
                generation,
                queue=self.routes.node(graph, child),
            )

        decision = completion_decision(done)
        match decision:
            case Duplicate(resend=again):
                # Recorded before (see plan_completion): make sure nothing it started is lost.
                if again is not None:
                    await self.resend(job(node_id, 0), again, graph)
                return
            case Refused():  # nothing was recorded
                return
            case Recorded() | Settled():
                pass
            case _:
                assert_never(decision)
        events.emit(
            _NODE_EVENTS[status],
            execution_id=eid,
            workflow_id=execution.workflow_id,
            node_id=node_id,
            error=error,
        )
        if done.enqueue:
            generations = {n.node_id: n.generation for n in done.nodes}
            children = [
                replace(job(child, generations.get(child, 0)), first=True) for child in done.enqueue
            ]
            if wait:
                await self.queue.enqueue_batched(children, priority=execution.priority)
            else:
                self.queue.enqueue_soon(children, priority=execution.priority)
        if not isinstance(decision, Settled):
            return
        if decision.status is ExecutionStatus.COMPLETED:
            events.emit(
                events.EXECUTION_COMPLETED, execution_id=eid, workflow_id=execution.workflow_id
            )
        else:
            # Nothing new starts now, in any worker: they read before starting a node.
            await self.count_control(eid, "the failure")
            events.emit(
                events.EXECUTION_FAILED,
                logging.WARNING,
                execution_id=eid,
                workflow_id=execution.workflow_id,
                error=error,
            )
        assert done.execution is not None
        await self.settled(done.execution)

    async def resend(self, job: NodeJob, again: Resend, graph: WorkflowGraph) -> None:
        """Send again what a finished node (``job``'s) started (a no-op where it exists):
        its claimed children's jobs, and its execution's settling."""
        if again.jobs:
            await self.queue.enqueue(
                [
                    NodeJob(
                        job.execution_id,
                        job.workflow_id,
                        job.workflow_version,
                        c,
                        g,
                        queue=self.routes.node(graph, c),
                    )
                    for c, g in again.jobs
                ],
                priority=again.priority,
            )
        if again.settled:
            settled = await self.store.get_execution(job.execution_id)
            if settled is not None:
                await self.settled(settled)

    async def count_control(self, execution_id: str, action: str) -> None:
        """After a pause, cancel, timeout or failure committed: workers that claim a node
        from now on read its execution instead of trusting what they knew (``JobQueue``'s
        control epoch). Redis refusing is logged: its workers claim nothing meanwhile
        either."""
        try:
            await self.queue.bump_control_epoch()
        except QueueError as exc:
            logger.warning("%s of %s not announced to workers: %s", action, execution_id, exc)


class ControlEffects(NodeEffects):
    """What follows a control action as well: the jobs a resume or a retry sends, and the
    stopping of a cancelled or timed-out execution's running nodes."""

    def __init__(
        self,
        store: ExecutionStore,
        queue: JobQueue,
        settled: SettledHook,
        routes: Routes,
        *,
        cache: WorkflowCache,
        cancel_local: Callable[[str], object],
        channel: ControlChannel,
    ) -> None:
        super().__init__(store, queue, settled, routes)
        self.cache = cache
        self.cancel_local = cancel_local  # the nodes running in this process
        self.channel = channel  # ... and in the others

    async def send(self, record: ExecutionRecord, wakeups: Sequence[Wakeup]) -> None:
        """Send the jobs a control transition asked for (now, or at their due time)."""
        if not wakeups:
            return
        graph = await self.cache.get(record.workflow_id, record.workflow_version)
        now: list[NodeJob] = []
        for w in wakeups:
            job = NodeJob(
                record.execution_id,
                record.workflow_id,
                record.workflow_version,
                w.node_id,
                w.generation,
                queue=self.routes.node(graph, w.node_id),
            )
            if w.due is None:
                now.append(job)
            else:
                await self.queue.enqueue(
                    [job], priority=record.priority, due_ms=int(w.due.timestamp() * 1000)
                )
        if now:
            await self.queue.enqueue(now, priority=record.priority)

    async def stopped(self, done: Transition, stopped: Stopped) -> None:
        """After a cancel or a timeout: stop its running nodes everywhere, then settle."""
        assert done.execution is not None
        emit_spans(done, done.execution)
        if stopped.in_flight:
            self.cancel_local(done.execution.execution_id)
            await self.channel.cancelled(done.execution.execution_id)
        await self.settled(done.execution)


def emit_spans(done: Transition, execution: ExecutionRecord) -> None:
    """The spans a control transition wrote (waits that ended, nodes it stopped), for the
    metrics and the OpenTelemetry export, as the runner emits those of the attempts it ran."""
    for span in done.spans:
        events.emit(events.NODE_SPAN, logging.DEBUG, span=span, execution=execution)
