"""The built-in node types the engine runs itself: delay, sub-workflow, wait and map.

Delay, sub-workflow and wait nodes suspend: they record the node as WAITING (with what it
waits for and, for a timer, when it is due) and give up the worker. Their job comes back —
at the due time from the scheduled set, when the child execution ends, or from the sweeper
— and ``wake`` decides whether the wait is over. No worker ever sleeps through a wait, and
a wait survives any worker restart: it lives in the store.

``begin`` and ``wake`` return the node's final outcome when it is known now, or None when
the node waits on (the job is finished); ``WakeAt`` asks the runner to put the job
back in the scheduled set for a due time.
"""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spane_py import _json
from spane_py.context import ExecutionContext
from spane_py.definitions.builtin_configs import (
    DELAY,
    MAX_DEPTH,
    SUB_WORKFLOW,
    WAIT,
    DelayConfig,
    MapConfig,
    SubWorkflowConfig,
    WaitConfig,
    apply_mapping,
    pick,
)
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import planner, starting
from spane_py.engine.attempt import Attempt
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.decisions import Suspended
from spane_py.engine.ids import new_execution_id
from spane_py.errors import (
    MaxDepthExceededError,
    NodeExecutionError,
    NonRetryableError,
    StatePersistenceError,
)
from spane_py.observability import events
from spane_py.observability.trace_ids import TRACEPARENT, child_traceparent
from spane_py.queue.client import JobQueue
from spane_py.records import ResumeTokenRecord
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore
from spane_py.traffic.control import TrafficControl

SUSPENDING = frozenset({DELAY, SUB_WORKFLOW, WAIT})


@dataclass(frozen=True, slots=True)
class WakeAt:
    """Put the node's job back in the scheduled set; it comes back at ``due``."""

    due: datetime


Step = planner.NodeOutcome | WakeAt | None


def _now() -> datetime:
    return datetime.now(UTC)


def _passthrough(ctx: ExecutionContext) -> planner.NodeOutcome:
    return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(ctx.input_data))


class BuiltinNodes:
    def __init__(
        self,
        *,
        store: ExecutionStore,
        queue: JobQueue,
        cache: WorkflowCache,
        registry: NodeRegistry,
        admit: starting.Admit,
        traffic: TrafficControl,
    ) -> None:
        self.store = store
        self.queue = queue
        self.cache = cache
        self.registry = registry
        self.admit = admit
        self.traffic = traffic

    # Suspending nodes ------------------------------------------------------------
    async def begin(self, attempt: Attempt) -> Step:
        kind = attempt.node.type
        if kind == DELAY:
            return await self._begin_delay(attempt)
        if kind == SUB_WORKFLOW:
            return await self._begin_child(attempt)
        return await self._begin_wait(attempt)

    async def wake(self, attempt: Attempt) -> Step:
        rec = attempt.started.nodes[attempt.node.id]
        info = _json.loads(rec.wait) if rec.wait else {}
        kind = info.get("kind") if isinstance(info, dict) else None
        if kind == "timer":
            if rec.wake_at is not None and rec.wake_at > _now():
                return WakeAt(rec.wake_at)  # early (a resume, the sweeper): not yet
            return _passthrough(attempt.ctx)
        if kind == "child":
            return await self._wake_child(attempt, info)
        if kind == "event":
            return self._wake_event(attempt, rec.wake_at, info)
        raise NonRetryableError(
            f"node {attempt.node.id!r} waits for something unknown ({rec.wait!r:.80})",
            node_id=attempt.node.id,
        )

    async def _suspend(
        self, attempt: Attempt, *, wake_at: datetime | None, wait: dict[str, Any]
    ) -> bool:
        done = await self.store.transition(
            attempt.ctx.execution_id,
            planner.plan_suspend(
                attempt.node.id,
                attempt.job.generation,
                attempt=attempt.ctx.attempt,
                started_at=attempt.started_at,
                wake_at=wake_at,
                wait=_json.dumps(wait),
            ),
            cached=attempt.started.snapshot,
        )
        suspended = isinstance(done.decision, Suspended)
        if suspended:
            events.emit(
                events.NODE_WAITING,
                execution_id=attempt.ctx.execution_id,
                workflow_id=attempt.ctx.workflow_id,
                node_id=attempt.node.id,
                kind=wait.get("kind"),
                wake_at=wake_at.isoformat() if wake_at else None,
            )
        return suspended

    # delay -------------------------------------------------------------------------
    async def _begin_delay(self, attempt: Attempt) -> Step:
        config = DelayConfig.model_validate(attempt.node.config)
        if config.seconds <= 0:
            return _passthrough(attempt.ctx)
        due = _now() + timedelta(seconds=config.seconds)
        if not await self._suspend(attempt, wake_at=due, wait={"kind": "timer"}):
            return None
        return WakeAt(due)

    # sub-workflow --------------------------------------------------------------------
    async def _begin_child(self, attempt: Attempt) -> Step:
        config = SubWorkflowConfig.model_validate(attempt.node.config)
        parent = attempt.started.execution
        ctx = attempt.ctx
        if parent.depth + 1 > MAX_DEPTH:
            raise MaxDepthExceededError(
                f"node {ctx.node_id!r} would start workflow {config.workflow_id!r} at depth "
                f"{parent.depth + 1}; sub-workflows nest at most {MAX_DEPTH} deep",
                execution_id=ctx.execution_id,
                node_id=ctx.node_id,
                workflow_id=ctx.workflow_id,
            )
        start = await self._prepare_child(attempt, config)  # unknown workflow: fails here
        child_id = new_execution_id()
        wait = {"kind": "child", "child": child_id, "workflow_id": config.workflow_id}
        if not await self._suspend(attempt, wake_at=None, wait=wait):
            return None
        await self._create_child(attempt, config, start, child_id)
        return None

    async def _prepare_child(self, attempt: Attempt, config: SubWorkflowConfig) -> starting.Start:
        parent = attempt.started.execution
        return await starting.prepare(
            self.cache,
            config.workflow_id,
            priority=parent.priority,
            delay=0,
            metadata={
                "parent_node_id": attempt.node.id,
                # The child's spans join this trace, under this attempt's span.
                TRACEPARENT: child_traceparent(
                    parent.execution_id,
                    parent.metadata,
                    attempt.node.id,
                    attempt.job.generation,
                    attempt.ctx.attempt,
                ),
            },
        )

    async def _create_child(
        self, attempt: Attempt, config: SubWorkflowConfig, start: starting.Start, child_id: str
    ) -> None:
        ctx = attempt.ctx
        initial = _json.dumps(
            apply_mapping(ctx.input_data, config.input_mapping),
            what=f"the input of sub-workflow node {ctx.node_id!r}",
        )
        now = _now()
        record = start.record(
            initial,
            now,
            None,
            execution_id=child_id,
            parent=attempt.started.execution,
            parent_node_id=ctx.node_id,
        )
        try:
            await self.store.create_execution(record, start.first_nodes(now))
        except StatePersistenceError:
            if await self.store.get_execution(child_id) is None:
                raise
            return  # created by an earlier delivery of this job
        await start.send_entry_jobs(self.queue, [record], self.admit)

    async def _wake_child(self, attempt: Attempt, info: dict[str, Any]) -> Step:
        config = SubWorkflowConfig.model_validate(attempt.node.config)
        child_id = str(info.get("child"))
        snap = await self.store.get_snapshot(child_id)
        if snap is None:
            # The process that suspended the node died before creating the child.
            start = await self._prepare_child(attempt, config)
            await self._create_child(attempt, config, start, child_id)
            return None
        child = snap.execution
        if not child.status.is_terminal:
            return None  # the child's end sends this job again
        if child.status is ExecutionStatus.COMPLETED:
            graph = await self.cache.get(child.workflow_id, child.workflow_version)
            finals = [n for n in graph.order if not graph.children[n]]
            if len(finals) == 1:
                rec = snap.nodes.get(finals[0])
                output: Any = rec.data if rec is not None else None
            else:
                output = {
                    n: rec.data
                    for n in finals
                    if (rec := snap.nodes.get(n)) is not None and rec.status is NodeStatus.SUCCEEDED
                }
            data = apply_mapping(output, config.output_mapping)
            return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(data))
        error = (
            f"sub-workflow {child.workflow_id!r} (execution {child.execution_id}) "
            f"{child.status.value}: {child.error or 'no error recorded'}"
        )
        if config.continue_on_fail:
            data = {"error": error, "continued_on_fail": True, "execution_id": child_id}
            return planner.NodeOutcome(NodeStatus.SUCCEEDED, output=_json.dumps(data), error=error)
        return planner.NodeOutcome(NodeStatus.FAILED, error=error)

    # wait (for an event) -------------------------------------------------------------
    async def _begin_wait(self, attempt: Attempt) -> Step:
        config = WaitConfig.model_validate(attempt.node.config)
        ctx = attempt.ctx
        now = _now()
        timeout = config.timeout_s
        wake_at = now + timedelta(seconds=timeout) if timeout is not None else None
        expires = wake_at or now + timedelta(seconds=config.token_ttl_seconds)
        token = secrets.token_urlsafe(32)
        await self.store.save_token(
            ResumeTokenRecord(
                token=token,
                execution_id=ctx.execution_id,
                node_id=ctx.node_id,
                generation=attempt.job.generation,
                created_at=now,
                expires_at=expires,
            )
        )
        if not await self._suspend(
            attempt, wake_at=wake_at, wait={"kind": "event", "token": token}
        ):
            await self.store.revoke_token(token, _now())
            return None
        return WakeAt(wake_at) if wake_at is not None else None

    def _wake_event(self, attempt: Attempt, wake_at: datetime | None, info: dict[str, Any]) -> Step:
        if wake_at is None:
            return None  # only engine.resume(token) ends this wait
        if wake_at > _now():
            return WakeAt(wake_at)
        config = WaitConfig.model_validate(attempt.node.config)
        if config.on_timeout == "continue":
            return planner.NodeOutcome(
                NodeStatus.SUCCEEDED, output=_json.dumps(config.default_output)
            )
        return planner.NodeOutcome(
            NodeStatus.FAILED,
            error=f"node {attempt.node.id!r} was not resumed within {config.timeout_s:g} s",
        )

    # map -------------------------------------------------------------------------------
    async def run_map(self, ctx: ExecutionContext) -> list[Any]:
        """Run the item type's executor on every item. A map node itself is never rate
        limited, but each item obeys its type's rate limit and circuit breaker (not the
        global limit, which counts node starts): an item that must wait waits here, in
        the map node's worker slot, since it cannot be deferred without its siblings."""
        config = MapConfig.model_validate(ctx.node.config)
        items = pick(ctx.input_data, config.items)
        if not isinstance(items, list):
            where = f"the value at {config.items!r} in its input" if config.items else "its input"
            raise NonRetryableError(
                f"map node {ctx.node_id!r} needs a list as {where}, got {type(items).__name__}",
                node_id=ctx.node_id,
                execution_id=ctx.execution_id,
            )
        registered = self.registry.get(config.node_type)
        item_node = NodeDefinition(id=ctx.node_id, type=config.node_type, config=config.config)
        parsed = registered.parse_config(config.config)
        limit = asyncio.Semaphore(config.concurrency or max(len(items), 1))

        async def one(index: int, item: Any) -> Any:
            item_ctx = ExecutionContext(
                workflow_id=ctx.workflow_id,
                execution_id=ctx.execution_id,
                node=item_node,
                input_data=item,
                records=ctx.records,
                parent_ids=ctx.parent_ids,
                workflow_version=ctx.workflow_version,
                parent_execution_id=ctx.parent_execution_id,
                depth=ctx.depth,
                attempt=ctx.attempt,
                metadata=ctx.metadata,
                config=parsed,
            )
            async with limit:
                try:
                    value = await self.traffic.run_item(
                        config.node_type,
                        f"{ctx.execution_id}:{ctx.node_id}:{ctx.attempt}:{index}",
                        lambda: registered.run(item_ctx),
                        rate_limit=registered.rate_limit,
                        breaker=registered.circuit_breaker,
                        lease_ms=ctx.node.timeout_ms,
                        execution_id=ctx.execution_id,
                        node_id=ctx.node_id,
                    )
                    result = (
                        value
                        if isinstance(value, ExecutionResult)
                        else ExecutionResult(True, value)
                    )
                    if not result.success:
                        raise NodeExecutionError(result.error or "unsuccessful result")
                    return result.data
                except Exception as exc:
                    message = exc.message if isinstance(exc, NodeExecutionError) else repr(exc)
                    if config.on_item_error == "collect":
                        return {"error": message, "index": index}
                    raise NodeExecutionError(
                        f"map node {ctx.node_id!r}: item {index} failed: {message}",
                        node_id=ctx.node_id,
                        execution_id=ctx.execution_id,
                    ) from exc
                finally:
                    for line in item_ctx.drain_logs():
                        ctx.keep_log(line)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
        except BaseExceptionGroup as group_error:  # the first failed item fails the node
            first = group_error.exceptions[0]
            # Its cause is the item's own error: the traceback keeps the user's frames.
            raise first from first.__cause__
        return [t.result() for t in tasks]
