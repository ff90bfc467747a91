"""Operating executions: pause, resume, cancel, retry, replay, resume tokens, the DLQ.

Every action is one store transition decided by the planner, then the jobs it calls for.
None scans a queue: a paused execution's jobs park themselves when a worker takes them,
a cancelled one's are dropped the same way, and resume sends what the store says waits.
A refused action raises ``InvalidExecutionStateError`` and changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import planner, starting
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.decisions import (
    Duplicate,
    Paused,
    Refused,
    Resumed,
    Retried,
    Stopped,
    completion_decision,
)
from spane_py.engine.effects import ControlEffects, emit_spans
from spane_py.engine.lifecycle import Lifecycle
from spane_py.engine.notify import ControlChannel
from spane_py.engine.resend import Resender
from spane_py.engine.runner import NodeRunner
from spane_py.errors import (
    DlqItemNotFoundError,
    ExecutionNotFoundError,
    ExecutionTimeoutError,
    InvalidExecutionStateError,
    ResumeTokenError,
    SpaneError,
)
from spane_py.limits import DEFAULT_LIMITS, Limits, encode_payload
from spane_py.observability import events
from spane_py.observability.trace_ids import TRACEPARENT
from spane_py.queue.client import JobQueue
from spane_py.records import Decide, DlqRecord, ExecutionRecord, ResumeTokenRecord, Transition
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore

logger = logging.getLogger("spane_py.engine")

# Bulk actions run this many at once.
BULK_CONCURRENCY = 64


@dataclass(frozen=True, slots=True)
class BulkResult:
    """What a bulk action did: ids it changed, ids that were already so, and refusals;
    for a replay, the new execution of each id replayed."""

    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)
    created: dict[str, str] = field(default_factory=dict)


async def check_token(store: ExecutionStore, token: str, now: datetime) -> ResumeTokenRecord:
    """The token's record when it can resume its node at ``now``; ``ResumeTokenError`` if
    not."""
    record = await store.get_token(token) if isinstance(token, str) and token else None
    if record is None:
        raise ResumeTokenError("unknown resume token", details={"reason": "unknown"})
    state = record.state(now)
    if state != "active":
        raise ResumeTokenError(
            f"the resume token is {state}",
            execution_id=record.execution_id,
            node_id=record.node_id,
            details={"reason": state},
        )
    return record


class Control:
    def __init__(
        self,
        *,
        store: ExecutionStore,
        queue: JobQueue,
        cache: WorkflowCache,
        runner: NodeRunner,
        lifecycle: Lifecycle,
        channel: ControlChannel,
        limits: Limits = DEFAULT_LIMITS,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        self.store = store
        self.clock = clock
        self.queue = queue
        self.cache = cache
        self.limits = limits
        self.lifecycle = lifecycle  # admission, for a retry under a concurrency limit
        # What follows its writes: jobs, settling (the lifecycle's), stopping running nodes
        # (here, the runner's, and in other processes, through the channel).
        self.effects = ControlEffects(
            store,
            queue,
            lifecycle.settled,
            runner.effects.routes,
            cache=cache,
            cancel_local=runner.cancel_local,
            channel=channel,
        )

    async def _apply(
        self, execution_id: str, decide: Decide, action: str, *, exists: bool = False
    ) -> Transition:
        """``exists``: the caller read the execution already (it raised if it was missing)."""
        if not exists and await self.store.get_execution(execution_id) is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        done = await self.store.transition(execution_id, decide)
        if isinstance(done.decision, Refused):
            raise InvalidExecutionStateError(
                f"cannot {action} execution {execution_id}: {done.decision.why}",
                execution_id=execution_id,
            )
        return done

    # Pause, resume, cancel -----------------------------------------------------------
    async def pause(self, execution_id: str) -> bool:
        done = await self._apply(execution_id, planner.plan_pause(), "pause")
        if not isinstance(done.decision, Paused):
            return False
        assert done.execution is not None
        await self.effects.count_control(execution_id, "the pause")
        events.emit(
            events.EXECUTION_PAUSED,
            execution_id=execution_id,
            workflow_id=done.execution.workflow_id,
        )
        return True

    async def resume(self, execution_id: str) -> bool:
        done = await self._apply(execution_id, planner.plan_resume(self.clock.now()), "resume")
        if not isinstance(done.decision, Resumed):
            return False
        assert done.execution is not None
        await self.effects.send(done.execution, done.decision.wakeups)
        events.emit(
            events.EXECUTION_RESUMED,
            execution_id=execution_id,
            workflow_id=done.execution.workflow_id,
        )
        return True

    async def cancel(self, execution_id: str, reason: str | None = None) -> bool:
        why = reason or "cancelled"
        record = await self._record(execution_id)
        graph = await self._graph(record)  # names the spans of its running and waiting nodes
        done = await self._apply(
            execution_id, planner.plan_cancel(self.clock.now(), why, graph), "cancel", exists=True
        )
        # Children even when this one was cancelled already: a cascade cut short by a
        # crash finishes on the next try. Each child settles on its own and wakes nobody
        # (the parent node is cancelled already).
        await self._cancel_children(execution_id, f"parent {execution_id} cancelled")
        if not isinstance(done.decision, Stopped):
            return False
        assert done.execution is not None
        await self.effects.count_control(execution_id, "the cancel")
        events.emit(
            events.EXECUTION_CANCELLED,
            execution_id=execution_id,
            workflow_id=done.execution.workflow_id,
            reason=why,
        )
        await self.effects.stopped(done, done.decision)
        return True

    async def time_out(self, execution_id: str) -> bool:
        """The execution's deadline job arrived: fail it with ``ExecutionTimeoutError`` (in
        its error) unless it ended; stop its running nodes and its sub-workflows."""
        record = await self.store.get_execution(execution_id)
        if record is None or record.status.is_terminal:
            return False
        graph = await self.cache.get(record.workflow_id, record.workflow_version)
        limit = graph.definition.timeout
        error = ExecutionTimeoutError(
            f"the execution ran past its timeout of {limit} ms",
            execution_id=execution_id,
            workflow_id=record.workflow_id,
        )
        reason = f"{type(error).__name__}: {error.message}"
        done = await self.store.transition(
            execution_id, planner.plan_timeout(self.clock.now(), reason, graph)
        )
        if not isinstance(done.decision, Stopped):
            return False
        assert done.execution is not None
        await self.effects.count_control(execution_id, "the timeout")
        await self._cancel_children(execution_id, f"parent {execution_id} timed out")
        events.emit(
            events.EXECUTION_FAILED,
            logging.WARNING,
            execution_id=execution_id,
            workflow_id=record.workflow_id,
            error=reason,
        )
        await self.effects.stopped(done, done.decision)
        return True

    async def _cancel_children(self, execution_id: str, reason: str) -> None:
        for child in await self.store.get_child_executions(execution_id):
            if not child.status.is_terminal:
                with contextlib.suppress(InvalidExecutionStateError):  # it ended meanwhile
                    await self.cancel(child.execution_id, reason)

    async def bulk(
        self, action: Callable[[str], Awaitable[bool]], execution_ids: Sequence[str]
    ) -> BulkResult:
        result = BulkResult()
        gate = asyncio.Semaphore(BULK_CONCURRENCY)

        async def one(execution_id: str) -> None:
            async with gate:
                try:
                    changed = await action(execution_id)
                except SpaneError as exc:
                    result.errors[execution_id] = exc.message
                    return
            (result.changed if changed else result.unchanged).append(execution_id)

        await asyncio.gather(*(one(i) for i in dict.fromkeys(execution_ids)))
        return result

    # Retry and replay ----------------------------------------------------------------
    async def retry(self, execution_id: str, *, only: frozenset[str] | None = None) -> None:
        record = await self._record(execution_id)
        graph = await self.cache.get(record.workflow_id, record.workflow_version)
        # Under a concurrency limit it waits for a slot, as a new execution does.
        queued = await self.lifecycle.limited(record.workflow_id)
        plan = planner.plan_retry_execution(graph, self.clock.now(), only=only, queued=queued)
        done = await self._apply(execution_id, plan, "retry")
        assert done.execution is not None
        assert isinstance(done.decision, Retried)  # or _apply raised
        if done.execution.status is ExecutionStatus.QUEUED:
            await self.lifecycle.admit(record.workflow_id)  # sends its jobs once admitted
        else:
            await self.effects.send(done.execution, done.decision.wakeups)
        events.emit(
            events.EXECUTION_RETRIED,
            execution_id=execution_id,
            workflow_id=record.workflow_id,
            nodes=",".join(w.node_id for w in done.decision.wakeups),
        )

    async def replay(
        self, execution_id: str, admit: starting.Admit, resender: Resender | None = None
    ) -> str:
        record = await self._record(execution_id)
        graph = await self.cache.get(record.workflow_id, record.workflow_version)
        start = starting.Start(
            record.workflow_id,
            record.workflow_version,
            graph,
            record.priority,
            0.0,
            # A replay is a new trace: the original's trace context stays behind.
            {
                **{k: v for k, v in record.metadata.items() if k != TRACEPARENT},
                "replayed_from": execution_id,
            },
            self.limits,
            self.clock,
            self.effects.routes,
        )
        new_id = await starting.start_one(
            self.store,
            self.queue,
            start,
            _json.loads(record.initial_data),
            None,
            admit,
            resender=resender,
        )
        events.emit(
            events.EXECUTION_REPLAYED,
            execution_id=new_id,
            workflow_id=record.workflow_id,
            replayed_from=execution_id,
        )
        return new_id

    async def _graph(self, record: ExecutionRecord) -> WorkflowGraph | None:
        """The execution's graph; None when its definition cannot be read (a cancel goes on
        without it)."""
        try:
            return await self.cache.get(record.workflow_id, record.workflow_version)
        except SpaneError as exc:
            logger.warning(
                "cancelling %s without its definition: %s", record.execution_id, exc.message
            )
            return None

    async def _record(self, execution_id: str) -> ExecutionRecord:
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        return record

    # Resume tokens ---------------------------------------------------------------------
    async def resume_token(self, token: str, data: Any) -> str:
        record = await check_token(self.store, token, self.clock.now())
        output = encode_payload(
            data, what="the data given with the resume token", limits=self.limits
        )
        execution = await self._record(record.execution_id)
        graph = await self.cache.get(execution.workflow_id, execution.workflow_version)
        outcome = planner.NodeOutcome(NodeStatus.SUCCEEDED, output=output)
        done = await self.store.transition(
            record.execution_id,
            planner.plan_event(
                graph, record.node_id, record.generation, token, outcome, self.clock.now()
            ),
        )
        if isinstance(completion_decision(done), Refused | Duplicate):
            raise ResumeTokenError(
                f"node {record.node_id!r} of execution {record.execution_id} no longer waits "
                "for this token",
                execution_id=record.execution_id,
                node_id=record.node_id,
                details={"reason": "not_waiting"},
            )
        emit_spans(done, execution)
        await self.store.set_token_used(token, self.clock.now())
        events.emit(
            events.NODE_RESUMED,
            execution_id=record.execution_id,
            workflow_id=execution.workflow_id,
            node_id=record.node_id,
        )
        await self.effects.completed(
            execution, record.node_id, NodeStatus.SUCCEEDED, None, done, graph
        )
        return record.execution_id

    # Dead-letter queue -----------------------------------------------------------------
    async def retry_dlq(self, dlq_id: int) -> DlqRecord:
        item = await self.store.get_dlq_item(dlq_id)
        if item is None:
            raise DlqItemNotFoundError(f"no dead-letter item has id {dlq_id!r}")
        if item.retried_at is not None:
            raise InvalidExecutionStateError(
                f"dead-letter item {dlq_id} was retried at {item.retried_at.isoformat()}",
                execution_id=item.execution_id,
                node_id=item.node_id,
            )
        await self.retry(item.execution_id, only=frozenset({item.node_id}))
        await self.store.mark_dlq_retried(dlq_id, self.clock.now())
        events.emit(
            events.DLQ_RETRIED,
            dlq_id=dlq_id,
            execution_id=item.execution_id,
            workflow_id=item.workflow_id,
            node_id=item.node_id,
        )
        return item
