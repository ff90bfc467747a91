"""``NodeRunner``: runs one node job — start, execute with timeout, retry or complete."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import timedelta
from typing import Any, assert_never

from spane_py import _json
from spane_py.artifacts import Artifacts
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.context import ExecutionContext
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import planner
from spane_py.engine.attempt import Attempt, node_context
from spane_py.engine.builtin_nodes import BuiltinNodes, Step, WakeAt
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.decisions import (
    Dropped,
    Duplicate,
    Parked,
    Requeued,
    Run,
    Stale,
    Unknown,
    Wake,
    start_decision,
)
from spane_py.engine.effects import NodeEffects, SettledHook
from spane_py.engine.outcomes import call_executor, describe, format_traceback, to_outcome
from spane_py.engine.routing import Routes
from spane_py.errors import (
    MaxDepthExceededError,
    NodeExecutionError,
    NonRetryableError,
    QueueError,
    RateLimitError,
    SerializationError,
    WorkflowNotFoundError,
    WorkflowValidationError,
)
from spane_py.observability import events
from spane_py.queue.client import JobQueue
from spane_py.queue.jobs import NodeJob
from spane_py.queue.outcomes import DONE, JobOutcome, Reschedule
from spane_py.records import DlqRecord, Recent
from spane_py.registry import NodeRegistry, RegisteredNode
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionStore
from spane_py.traffic.admission import Admission
from spane_py.traffic.control import TrafficControl

logger = logging.getLogger("spane_py.runner")

# Errors that retrying cannot fix: the node fails at once, whatever its retry policy.
_PERMANENT = (
    SerializationError,
    NonRetryableError,
    MaxDepthExceededError,
    WorkflowNotFoundError,
    WorkflowValidationError,
)
# A waiting node whose wake-up failed (a store hiccup) looks again after this long.
WAKE_RETRY_S = 1.0


class NodeRunner:
    def __init__(
        self,
        *,
        registry: NodeRegistry,
        store: ExecutionStore,
        cache: WorkflowCache,
        queue: JobQueue,
        on_settled: SettledHook,
        builtins: BuiltinNodes,
        traffic: TrafficControl,
        max_output_bytes: int = 1 << 20,
        running_mark_delay: float = 0.25,
        cancel_grace_seconds: float = 2.0,
        max_lost_deliveries: int = 5,
        clock: Clock = SYSTEM_CLOCK,
        routes: Routes | None = None,
        artifacts: Artifacts | None = None,
    ) -> None:
        self.registry = registry
        self.artifacts = artifacts  # every context's handle on the store's artifacts
        routes = routes if routes is not None else Routes(registry)
        self.clock = clock
        self.store = store
        self.cache = cache
        self.queue = queue
        # What follows its writes: children's jobs, settling (``on_settled``), ...
        self.effects = NodeEffects(store, queue, on_settled, routes)
        self.builtins = builtins
        self.traffic = traffic
        self.max_output_bytes = max_output_bytes
        self.running_mark_delay = running_mark_delay
        self.cancel_grace_seconds = cancel_grace_seconds
        self.max_lost_deliveries = max_lost_deliveries
        self._marking: set[asyncio.Task[None]] = set()
        # The running mark of each attempt under way here that has one (ctx.rate_limit
        # undoes it).
        self._marks: dict[tuple[str, str], asyncio.Task[None]] = {}
        # Attempts running in this process, by execution: cancel_local reaches them.
        self._running: dict[str, dict[str, tuple[ExecutionContext, asyncio.Task[Any]]]] = {}

    async def run(self, job: NodeJob, *, lost: int = 0, again: bool = True) -> JobOutcome:
        """Run one delivery of a node job; returns what should happen to the job. ``lost``:
        how many workers were lost while it ran alone (see the queue's suspects) — past
        ``max_lost_deliveries`` the node fails instead of taking down yet another worker."""
        graph = await self.cache.get(job.workflow_id, job.workflow_version)
        node = graph.nodes.get(job.node_id)
        if node is None:
            logger.error(
                "dropping job for unknown node %r of %s v%d",
                job.node_id,
                job.workflow_id,
                job.workflow_version,
            )
            return DONE
        eid = job.execution_id
        started_at = self.clock.now()
        # The first delivery of a job its claiming write sent may start on what this
        # process knows of the execution since its last control epoch (no read).
        recent = None
        if job.first and not again:
            recent = Recent(self.queue.control_seen_at, planner.stands_on_recent(node.id))
        start = await self.store.transition(
            eid,
            planner.plan_start(node.id, job.generation, started_at, graph=graph),
            recent=recent,
        )
        decision = start_decision(start)
        match decision:
            case Run() | Wake():
                started = decision
            case Duplicate(resend=resend):
                if resend is not None:
                    await self.effects.resend(job, resend, graph)
                return DONE
            case Dropped():
                events.emit(
                    events.NODE_DROPPED,
                    execution_id=eid,
                    workflow_id=job.workflow_id,
                    node_id=node.id,
                )
                return DONE
            case Stale() | Parked() | Unknown():
                return DONE
            case _:
                assert_never(decision)
        waking = isinstance(started, Wake)
        if waking:
            rec = started.nodes[node.id]
            started_at = rec.started_at or started_at

        ctx = node_context(job, graph, node, started, self.artifacts)
        attempt = Attempt(job, graph, node, ctx, started, started_at, self.clock)
        if lost > self.max_lost_deliveries and not waking:
            logger.error(
                "node %s of %s lost its worker %d times in a row: failing it", node.id, eid, lost
            )
            error = (
                f"node {node.id!r} lost its worker {lost} times in a row, running alone each "
                "time (killed, out of memory, or blocked past its lease)"
            )
            await asyncio.shield(
                self._complete(attempt, planner.NodeOutcome(NodeStatus.FAILED, error=error))
            )
            return DONE
        if waking or self.builtins.suspends(node.type):
            if not waking:
                events.emit(
                    events.NODE_STARTED,
                    execution_id=eid,
                    workflow_id=job.workflow_id,
                    node_id=node.id,
                    attempt=started.attempt,
                )
            return await self._run_builtin(attempt, waking)
        admission: Admission | None = None
        registered = self.registry.find(node.type)  # None: a map, or a type that fails below
        if registered is not None and self.traffic.guarded(
            node.type, registered.rate_limit, registered.circuit_breaker
        ):
            admitted = await self._admit(attempt, registered)
            if not isinstance(admitted, Admission):
                return admitted
            admission = admitted
        events.emit(
            events.NODE_STARTED,
            execution_id=eid,
            workflow_id=job.workflow_id,
            node_id=node.id,
            attempt=started.attempt,
        )
        # A node that is still running after a moment is recorded as running; one that
        # finishes sooner is recorded once, with its result.
        marker = asyncio.get_running_loop().call_later(
            self.running_mark_delay, self._start_marking, attempt
        )
        task = asyncio.current_task()
        self._track(eid, node.id, ctx, task)
        try:
            outcome = await self._execute(graph, node, ctx, admission)
        except asyncio.CancelledError:
            marker.cancel()
            await asyncio.shield(self._flush_logs(ctx))
            if ctx.is_cancelled and task is not None and task.cancelling() <= 1:
                task.uncancel()  # the execution was cancelled: the node is recorded so
                return DONE
            raise
        except RateLimitError as exc:  # ctx.rate_limit: not a failure, not an attempt
            marker.cancel()
            return await self._rate_limited(attempt, exc)
        except Exception as exc:  # the executor failed: retry or fail for good
            marker.cancel()
            final = await self._failed_attempt(attempt, exc)
            if isinstance(final, Reschedule):
                await self._flush_logs(ctx)
                return final
            outcome = final
        finally:
            self._untrack(eid, node.id)
            self._marks.pop((eid, node.id), None)
        marker.cancel()
        await asyncio.shield(self._complete(attempt, outcome))
        return DONE

    async def _admit(self, attempt: Attempt, registered: RegisteredNode) -> Admission | JobOutcome:
        """Rate limits and the circuit breaker, before the executor is called.

        Refused: the job goes back to the scheduled set for the wait (its worker slot is
        free at once; nothing was written to the store, so the node is still queued and the
        attempt does not count): a ``Reschedule`` is returned. Refused by an open breaker
        with ``on_open="fail"``: the attempt fails with ``CircuitBreakerOpenError`` through
        the retry policy (a retry, or the node's failure recorded, and ``DONE``).
        """
        ctx, node = attempt.ctx, attempt.node
        breaker = registered.circuit_breaker
        try:
            admission = await self.traffic.admit(
                node.type,
                self.queue.job_id(attempt.job),
                rate_limit=registered.rate_limit,
                breaker=breaker,
                lease_ms=node.timeout_ms,
                execution_id=ctx.execution_id,
                node_id=node.id,
            )
        except QueueError as exc:  # Redis is failing: look again shortly
            logger.warning("%s; node %s of %s waits", exc.message, node.id, ctx.execution_id)
            return self._defer(attempt, WAKE_RETRY_S * 1000)
        if admission.admitted:
            return admission
        if admission.breaker_refused and breaker is not None and breaker.on_open == "fail":
            error = self.traffic.refusal(admission, execution_id=ctx.execution_id, node_id=node.id)
            final = await self._failed_attempt(attempt, error)
            if isinstance(final, Reschedule):
                return final
            await asyncio.shield(self._complete(attempt, final))
            return DONE
        return self._defer(attempt, admission.wait_ms)

    def _defer(self, attempt: Attempt, wait_ms: float) -> Reschedule:
        """The job goes back to the scheduled set, due in ``wait_ms``."""
        return Reschedule(
            int(self.clock.now().timestamp() * 1000 + wait_ms), attempt.started.execution.priority
        )

    async def _rate_limited(self, attempt: Attempt, exc: RateLimitError) -> Reschedule:
        """The executor called ``ctx.rate_limit(ms)``: hold its type back everywhere, undo
        the running mark if one was written (the attempt does not count), defer the job."""
        ctx, node = attempt.ctx, attempt.node
        held = await self.traffic.block(node.type, exc.retry_after_ms)
        self.traffic.limited(node.type, "executor", held, ctx.execution_id, node.id)
        marking = self._marks.pop((ctx.execution_id, node.id), None)
        if marking is not None:
            await asyncio.wait([marking])
            await self.store.transition(
                ctx.execution_id,
                planner.plan_defer(node.id, attempt.job.generation, ctx.attempt, self.clock.now()),
                cached=attempt.started.snapshot,
            )
        await self._flush_logs(ctx)
        return self._defer(attempt, held)

    async def _run_builtin(self, attempt: Attempt, waking: bool) -> JobOutcome:
        """A delay, sub-workflow or wait node: begin its wait, or see whether it is over."""
        step: Step
        try:
            if waking:
                step = await self.builtins.wake(attempt)
            else:
                step = await self.builtins.begin(attempt)
        except Exception as exc:
            if waking:  # the wait stays recorded: look again shortly
                logger.warning(
                    "waking node %s of %s failed, retrying: %s",
                    attempt.node.id,
                    attempt.ctx.execution_id,
                    describe(exc),
                )
                step = WakeAt(self.clock.now() + timedelta(seconds=WAKE_RETRY_S))
            else:
                final = await self._failed_attempt(attempt, exc)
                if isinstance(final, Reschedule):
                    return final
                step = final
        if isinstance(step, WakeAt):
            return Reschedule(int(step.due.timestamp() * 1000), attempt.started.execution.priority)
        if step is not None:
            await asyncio.shield(self._complete(attempt, step))
        return DONE

    def _track(
        self, execution_id: str, node_id: str, ctx: ExecutionContext, task: asyncio.Task[Any] | None
    ) -> None:
        if task is not None:
            self._running.setdefault(execution_id, {})[node_id] = (ctx, task)

    def _untrack(self, execution_id: str, node_id: str) -> None:
        running = self._running.get(execution_id)
        if running is not None:
            running.pop(node_id, None)
            if not running:
                del self._running[execution_id]

    def cancel_local(self, execution_id: str) -> int:
        """The execution was cancelled: tell its nodes running here (``ctx.is_cancelled``)
        and cancel them after ``cancel_grace_seconds``. Returns how many were told."""
        running = list(self._running.get(execution_id, {}).values())
        loop = asyncio.get_running_loop()
        for ctx, task in running:
            ctx.request_cancel()
            loop.call_later(self.cancel_grace_seconds, _cancel_if_running, task, ctx)
        return len(running)

    def _start_marking(self, attempt: Attempt) -> None:
        task = asyncio.get_running_loop().create_task(self._mark_running(attempt))
        self._marking.add(task)
        task.add_done_callback(self._marking.discard)
        self._marks[(attempt.ctx.execution_id, attempt.node.id)] = task

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
        self,
        graph: WorkflowGraph,
        node: NodeDefinition,
        ctx: ExecutionContext,
        admission: Admission | None = None,
    ) -> planner.NodeOutcome:
        inline = self.builtins.inline(node.type)
        if inline is not None:  # a built-in type that runs like an executor (map)
            run: Callable[[ExecutionContext], Awaitable[Any]] = inline
        else:
            registered = self.registry.get(node.type)
            if registered.config_model is not None:
                ctx.config = registered.parse_config(node.config)
            run = registered.run
        if admission is None:
            value = await call_executor(run, node, ctx)
        else:  # the breaker hears how the call went (not how its output is handled)
            value = await self.traffic.call(admission, call_executor(run, node, ctx))
        return to_outcome(graph, node, value, max_output_bytes=self.max_output_bytes)

    async def _failed_attempt(
        self, attempt: Attempt, exc: Exception
    ) -> planner.NodeOutcome | Reschedule:
        """Returns the node's final outcome, or the job's ``Reschedule`` for a retry."""
        node, ctx, job = attempt.node, attempt.ctx, attempt.job
        error = describe(exc)
        trace = format_traceback(exc)
        policy = node.effective_retry_policy
        retryable = not isinstance(exc, _PERMANENT)
        if not isinstance(exc, NodeExecutionError | SerializationError):
            logger.info("node %s of %s raised %s", node.id, ctx.execution_id, error, exc_info=exc)
        decision = policy.decide(exc, ctx.attempt) if retryable else None
        if decision is not None and decision.retry:
            span = attempt.span("retrying", error=error, traceback=trace)
            retry = await self.store.transition(
                ctx.execution_id,
                planner.plan_retry(
                    node.id,
                    job.generation,
                    error,
                    self.clock.now(),
                    attempt=ctx.attempt,
                    started_at=attempt.started_at,
                    spans=(span,),
                ),
                cached=attempt.started.snapshot,
            )
            if isinstance(retry.decision, Requeued):
                attempt.emit_span(span)
                events.emit(
                    events.NODE_RETRYING,
                    execution_id=ctx.execution_id,
                    workflow_id=ctx.workflow_id,
                    node_id=node.id,
                    attempt=ctx.attempt,
                    delay_ms=decision.delay_ms,
                    error=error,
                )
                due = int(self.clock.now().timestamp() * 1000) + decision.delay_ms
                return Reschedule(due, attempt.started.execution.priority)
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
        dlq = None
        if outcome.status is NodeStatus.FAILED:
            dlq = DlqRecord(
                execution_id=eid,
                workflow_id=job.workflow_id,
                node_id=ctx.node_id,
                job=job.payload(),
                error=outcome.error or "failed",
                attempts=ctx.attempt,
                failed_at=self.clock.now(),
                traceback=outcome.traceback,
            )
        done = await self.store.transition(
            eid,
            planner.plan_completion(
                attempt.graph,
                ctx.node_id,
                job.generation,
                outcome,
                self.clock.now(),
                spans=(span,),
                dlq=dlq,
            ),
            cached=attempt.started.snapshot,
        )
        if not isinstance(done.decision, Duplicate):  # recorded before (a cancel's span, say)
            attempt.emit_span(span)
        await self.effects.completed(
            attempt.started.execution,
            ctx.node_id,
            outcome.status,
            outcome.error,
            done,
            attempt.graph,
            wait=False,
        )

    async def _flush_logs(self, ctx: ExecutionContext) -> None:
        logs = ctx.drain_logs()
        if logs:
            await self.store.add_logs(logs)


def _cancel_if_running(task: asyncio.Task[Any], ctx: ExecutionContext) -> None:
    if not task.done() and ctx.is_cancelled:
        task.cancel()
