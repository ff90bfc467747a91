"""``NodeRunner``: runs one node job — start, execute with timeout, retry or complete."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from arq.worker import RetryJob

from spane_py import _json
from spane_py.context import ExecutionContext
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import planner
from spane_py.engine.cache import WorkflowCache
from spane_py.errors import (
    NodeExecutionError,
    NodeTimeoutError,
    NonRetryableError,
    SerializationError,
    SpaneError,
)
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import NodeJob
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionStore, SpanRecord

logger = logging.getLogger("spane_py.runner")

SettledHook = Callable[[str], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Attempt:
    """One run of one node, from its start decision to its result."""

    job: NodeJob
    graph: WorkflowGraph
    node: NodeDefinition
    ctx: ExecutionContext
    started: planner.StartPayload
    started_at: datetime

    def span(
        self, status: str, *, error: str | None = None, traceback: str | None = None
    ) -> SpanRecord:
        """This attempt as a span of the execution's trace, ending now."""
        ctx = self.ctx
        return SpanRecord(
            span_id=f"{ctx.execution_id}:{ctx.node_id}:{self.job.generation}:{ctx.attempt}",
            execution_id=ctx.execution_id,
            node_id=ctx.node_id,
            name=self.node.name or self.node.id,
            attempt=ctx.attempt,
            status=status,
            started_at=self.started_at,
            ended_at=_now(),
            worker_id=WORKER_ID,
            error=error,
            traceback=traceback,
            attributes={"type": self.node.type, "workflow_version": self.job.workflow_version},
        )


def _now() -> datetime:
    return datetime.now(UTC)


class NodeRunner:
    def __init__(
        self,
        *,
        registry: NodeRegistry,
        store: ExecutionStore,
        cache: WorkflowCache,
        queue: JobQueue,
        on_settled: SettledHook,
        max_output_bytes: int = 1 << 20,
        running_mark_delay: float = 0.25,
    ) -> None:
        self.registry = registry
        self.store = store
        self.cache = cache
        self.queue = queue
        self.on_settled = on_settled
        self.max_output_bytes = max_output_bytes
        self.running_mark_delay = running_mark_delay
        self._marking: set[asyncio.Task[None]] = set()

    async def job(self, arq_ctx: dict[str, Any], payload: object) -> None:
        """The arq job function: one run of one node."""
        try:
            job = NodeJob.from_payload(payload)
        except ValueError as exc:
            logger.error("dropping malformed node job %s: %s", arq_ctx.get("job_id"), exc)
            return
        await self.run(job)

    async def run(self, job: NodeJob) -> None:
        graph = await self.cache.get(job.workflow_id, job.workflow_version)
        node = graph.nodes.get(job.node_id)
        if node is None:
            logger.error(
                "dropping job for unknown node %r of %s v%d",
                job.node_id,
                job.workflow_id,
                job.workflow_version,
            )
            return
        eid = job.execution_id
        started_at = _now()
        start = await self.store.transition(
            eid, planner.plan_start(node.id, job.generation, started_at)
        )
        if start.outcome != planner.RUN:
            if start.outcome == planner.DROPPED:
                events.emit(events.NODE_DROPPED, execution_id=eid, node_id=node.id)
            return
        started: planner.StartPayload = start.payload
        execution = started.execution
        events.emit(events.NODE_STARTED, execution_id=eid, node_id=node.id, attempt=started.attempt)

        ctx = ExecutionContext(
            workflow_id=job.workflow_id,
            execution_id=eid,
            node=node,
            input_data=planner.node_input(graph, node.id, execution, started.nodes),
            records=started.nodes,
            parent_ids=graph.parents[node.id],
            workflow_version=job.workflow_version,
            parent_execution_id=execution.parent_execution_id,
            depth=execution.depth,
            attempt=started.attempt,
            metadata=execution.metadata,
        )
        attempt = Attempt(job, graph, node, ctx, started, started_at)
        # A node that is still running after a moment is recorded as running; one that
        # finishes sooner is recorded once, with its result.
        marker = asyncio.get_running_loop().call_later(
            self.running_mark_delay, self._start_marking, attempt
        )
        try:
            outcome = await self._execute(graph, node, ctx)
        except asyncio.CancelledError:
            marker.cancel()
            await asyncio.shield(self._flush_logs(ctx))
            raise
        except Exception as exc:  # the executor failed: retry or fail for good
            marker.cancel()
            final = await self._failed_attempt(attempt, exc)
            if final is None:
                await self._flush_logs(ctx)
                raise RetryJob() from exc
            outcome = final
        marker.cancel()
        await asyncio.shield(self._complete(attempt, outcome))

    def _start_marking(self, attempt: Attempt) -> None:
        task = asyncio.get_running_loop().create_task(self._mark_running(attempt))
        self._marking.add(task)
        task.add_done_callback(self._marking.discard)

    async def _mark_running(self, attempt: Attempt) -> None:
        try:
            await self.store.transition(
                attempt.ctx.execution_id,
                planner.plan_mark_running(
                    attempt.node.id, attempt.job.generation, attempt.ctx.attempt, attempt.started_at
                ),
                cached=attempt.started.snapshot,
            )
        except Exception as exc:  # best effort: the result write records the attempt anyway
            logger.warning(
                "could not record node %s of %s as running: %s",
                attempt.node.id,
                attempt.ctx.execution_id,
                exc,
            )

    async def _execute(
        self, graph: WorkflowGraph, node: NodeDefinition, ctx: ExecutionContext
    ) -> planner.NodeOutcome:
        registered = self.registry.get(node.type)
        if registered.config_model is not None:
            ctx.config = registered.parse_config(node.config)
        if node.timeout_ms is not None:
            deadline = asyncio.timeout(node.timeout_ms / 1000)
            try:
                async with deadline:
                    value = await registered.run(ctx)
            except TimeoutError:
                if not deadline.expired():  # the executor's own TimeoutError: an error
                    raise
                raise NodeTimeoutError(
                    f"node {node.id!r} timed out after {node.timeout_ms} ms",
                    node_id=node.id,
                    execution_id=ctx.execution_id,
                    workflow_id=ctx.workflow_id,
                ) from None
        else:
            value = await registered.run(ctx)
        return self._outcome(graph, node, value)

    def _outcome(
        self, graph: WorkflowGraph, node: NodeDefinition, value: Any
    ) -> planner.NodeOutcome:
        result = value if isinstance(value, ExecutionResult) else ExecutionResult(True, value)
        if not result.success:
            return planner.NodeOutcome(
                NodeStatus.FAILED, error=result.error or "the node returned an unsuccessful result"
            )
        next_nodes: tuple[str, ...] | None = None
        if result.next_nodes is not None:
            if isinstance(result.next_nodes, str):
                raise NonRetryableError(
                    f"node {node.id!r} returned next_nodes as a string; give a list of node ids",
                    node_id=node.id,
                )
            next_nodes = tuple(result.next_nodes)
            unknown = [n for n in next_nodes if n not in graph.children[node.id]]
            if unknown:
                raise NonRetryableError(
                    f"node {node.id!r} chose next_nodes {unknown}, which are not among its "
                    f"outputs {list(graph.children[node.id])}",
                    node_id=node.id,
                )
        output = None
        if result.data is not None or not result.skipped:
            output = _json.dumps(result.data, what=f"the output of node {node.id!r}")
            if len(output) * 4 > self.max_output_bytes and (
                len(output.encode()) > self.max_output_bytes
            ):
                raise NonRetryableError(
                    f"the output of node {node.id!r} is {len(output.encode())} bytes, over the "
                    f"limit of {self.max_output_bytes} bytes",
                    node_id=node.id,
                )
        status = NodeStatus.SKIPPED if result.skipped else NodeStatus.SUCCEEDED
        return planner.NodeOutcome(status, output=output, next_nodes=next_nodes)

    async def _failed_attempt(self, attempt: Attempt, exc: Exception) -> planner.NodeOutcome | None:
        """Returns the final outcome, or None when the attempt will be retried."""
        node, ctx, job = attempt.node, attempt.ctx, attempt.job
        error = _describe(exc)
        trace = _traceback(exc)
        policy = node.effective_retry_policy
        retryable = not isinstance(exc, SerializationError | NonRetryableError)
        if not isinstance(exc, NodeExecutionError | SerializationError):
            logger.info("node %s of %s raised %s", node.id, ctx.execution_id, error, exc_info=exc)
        decision = policy.decide(exc, ctx.attempt) if retryable else None
        if decision is not None and decision.retry:
            retry = await self.store.transition(
                ctx.execution_id,
                planner.plan_retry(
                    node.id,
                    job.generation,
                    error,
                    _now(),
                    attempt=ctx.attempt,
                    started_at=attempt.started_at,
                    spans=(attempt.span("retrying", error=error, traceback=trace),),
                ),
                cached=attempt.started.snapshot,
            )
            if retry.outcome == planner.RUN:
                events.emit(
                    events.NODE_RETRYING,
                    execution_id=ctx.execution_id,
                    node_id=node.id,
                    attempt=ctx.attempt,
                    delay_ms=decision.delay_ms,
                    error=error,
                )
                due = int(time.time() * 1000) + decision.delay_ms
                await self.queue.reschedule(
                    self.queue.job_id(job), due_ms=due, priority=attempt.started.execution.priority
                )
                return None
        if policy.continue_on_fail:
            return planner.NodeOutcome(
                NodeStatus.SUCCEEDED,
                output=_json.dumps({"error": error, "continued_on_fail": True}),
                error=error,
                traceback=trace,
            )
        return planner.NodeOutcome(NodeStatus.FAILED, error=error, traceback=trace)

    async def _complete(self, attempt: Attempt, outcome: planner.NodeOutcome) -> None:
        job, ctx = attempt.job, attempt.ctx
        await self._flush_logs(ctx)
        eid = ctx.execution_id
        outcome = replace(outcome, attempt=ctx.attempt, started_at=attempt.started_at)
        span = attempt.span(outcome.status.value, error=outcome.error, traceback=outcome.traceback)
        done = await self.store.transition(
            eid,
            planner.plan_completion(
                attempt.graph, ctx.node_id, job.generation, outcome, _now(), spans=(span,)
            ),
            cached=attempt.started.snapshot,
        )
        if done.outcome == planner.DUPLICATE:
            # Recorded before (see plan_completion): make sure nothing it started is lost.
            again = done.payload
            if isinstance(again, planner.Resend):
                if again.jobs:
                    await self.queue.enqueue(
                        [
                            NodeJob(eid, job.workflow_id, job.workflow_version, c)
                            for c in again.jobs
                        ],
                        priority=attempt.started.execution.priority,
                    )
                if again.settled:
                    await self.on_settled(eid)
            return
        events.emit(
            _NODE_EVENTS[outcome.status],
            execution_id=eid,
            node_id=ctx.node_id,
            error=outcome.error,
        )
        if done.enqueue:
            await self.queue.enqueue_batched(
                [
                    NodeJob(eid, job.workflow_id, job.workflow_version, child)
                    for child in done.enqueue
                ],
                priority=attempt.started.execution.priority,
            )
        if done.outcome == planner.SETTLED_COMPLETED:
            events.emit(events.EXECUTION_COMPLETED, execution_id=eid, workflow_id=job.workflow_id)
            await self.on_settled(eid)
        elif done.outcome == planner.SETTLED_FAILED:
            events.emit(
                events.EXECUTION_FAILED,
                logging.WARNING,
                execution_id=eid,
                workflow_id=job.workflow_id,
                error=outcome.error,
            )
            await self.on_settled(eid)

    async def _flush_logs(self, ctx: ExecutionContext) -> None:
        logs = ctx.drain_logs()
        if logs:
            await self.store.add_logs(logs)


_NODE_EVENTS = {
    NodeStatus.SUCCEEDED: events.NODE_COMPLETED,
    NodeStatus.FAILED: events.NODE_FAILED,
    NodeStatus.SKIPPED: events.NODE_SKIPPED,
}


MAX_TRACEBACK_CHARS = 20_000
WORKER_ID = f"{socket.gethostname()}:{os.getpid()}"


def _traceback(exc: BaseException) -> str:
    text = "".join(traceback.format_exception(exc))
    return text if len(text) <= MAX_TRACEBACK_CHARS else "..." + text[-MAX_TRACEBACK_CHARS:]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, SpaneError):
        return exc.message
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
