"""``WorkflowEngine``: the facade users hold — register, enqueue, run workers, wait, query."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Union

from prometheus_client import CollectorRegistry

from spane_py._text import check_argument
from spane_py.definitions.models import MAX_WEBHOOK_TOLERANCE_S, WorkflowDefinition
from spane_py.definitions.validation import validate_workflow
from spane_py.engine import starting
from spane_py.engine.cache import CacheStats, WorkflowCache
from spane_py.engine.control import BulkResult, Control, check_token
from spane_py.engine.lifecycle import Lifecycle
from spane_py.engine.notify import SettleNotifier
from spane_py.engine.observing import Observability, check_port, scoped
from spane_py.engine.options import check_durations
from spane_py.engine.states import to_log, to_span, to_state
from spane_py.engine.wiring import RunnerOptions, Wiring, unwire, wire
from spane_py.engine.workers import build_worker, sweep_pending, warn_if_not_durable
from spane_py.errors import (
    ConfigurationError,
    ExecutionNotFoundError,
    ExecutionWaitTimeoutError,
    InvalidEnqueueOptionsError,
    WorkflowNotFoundError,
)
from spane_py.limits import DEFAULT_LIMITS, Limits
from spane_py.observability import events
from spane_py.observability.stream import DEFAULT_MAXLEN, EventSubscription
from spane_py.queue.client import JobQueue, QueueStats
from spane_py.queue.jobs import NodeJob
from spane_py.queue.presence import LiveWorker, WorkerPresence
from spane_py.queue.worker import PeriodicTask, SpaneWorker
from spane_py.records import DlqRecord, ResumeTokenRecord, WebhookRecord, WorkflowVersionRecord
from spane_py.registry import NodeRegistry
from spane_py.state import ExecutionState, ExecutionTrace
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.traffic.breakers import BreakerState
from spane_py.traffic.control import TrafficControl
from spane_py.traffic.policies import RateLimit
from spane_py.triggers import scheduler as schedules
from spane_py.triggers import sync as trigger_sync
from spane_py.triggers import webhooks
from spane_py.triggers.replay import ReplayMemory
from spane_py.triggers.scheduler import ScheduleInfo, Scheduler

if TYPE_CHECKING:
    from spane_py.dsl import Workflow

WorkflowSource = Union[WorkflowDefinition, Mapping[str, Any], str, bytes, "Workflow"]

logger = logging.getLogger("spane_py.engine")

_PREFIX_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_\-.]{0,63}$")


@dataclass(frozen=True, slots=True)
class RegisteredWorkflow:
    workflow_id: str
    version: int
    content_hash: str
    created: bool
    warnings: tuple[str, ...] = ()


class WorkflowEngine:
    """Registers workflows, enqueues executions, runs workers and answers queries.

    ``redis_url`` defaults to ``$REDIS_URL``; with neither, an embedded Redis is started for
    this engine and stopped by ``close()``. ``store`` defaults to a fresh in-memory store;
    ``start()`` starts it and ``close()`` closes it (``close_store=False`` to keep it open).
    Use as ``async with WorkflowEngine(registry) as engine: ...``. ``producer_only=True``:
    an engine that registers and enqueues workflows whose executors are only in the
    workers (node types are not looked up in ``registry``) and runs no worker.

    Observability (docs/observability.md): every process publishes its events to the
    stream ``engine.subscribe`` reads (``event_stream=False``: not this one); metrics are
    counted per engine (``metrics_text``, and ``/metrics`` on ``metrics_port``);
    ``tracing`` (True: the global OpenTelemetry tracer provider, or a provider) exports
    a span per node attempt and per execution.
    """

    def __init__(
        self,
        registry: NodeRegistry,
        store: ExecutionStore | None = None,
        *,
        redis_url: str | None = None,
        key_prefix: str = "spane",
        cache_max_size: int = 500,
        cache_ttl_seconds: float = 3600.0,
        poll_delay: float = 0.5,
        lease_seconds: float = 30.0,
        max_output_bytes: int = 1 << 20,
        shutdown_grace: float = 10.0,
        workflows: Sequence[WorkflowSource] = (),
        sweep_interval_seconds: float = 15.0,
        stale_after_seconds: float = 30.0,
        close_store: bool = True,
        cancel_grace_seconds: float = 2.0,
        idempotency_ttl_seconds: float | None = 24 * 3600.0,
        global_rate_limit: RateLimit | tuple[int, float] | None = None,
        limits: Limits | None = None,
        max_lost_deliveries: int = 5,
        schedule_grace_seconds: float = 10.0,
        schedule_refresh_seconds: float = 5.0,
        event_stream: bool = True,
        event_stream_maxlen: int = DEFAULT_MAXLEN,
        metrics_port: int | None = None,
        metrics_addr: str = "0.0.0.0",
        tracing: Any = False,
        producer_only: bool = False,
        webhook_tolerance_seconds: float = 300.0,
        webhook_clock: Callable[[], float] = time.time,
    ) -> None:
        if not _PREFIX_RE.match(key_prefix):
            raise ConfigurationError(
                f"key_prefix {key_prefix!r} must be 1-64 letters, digits, '_', '-' or '.'"
            )
        check_durations(
            {
                "cache_ttl_seconds": cache_ttl_seconds,
                "poll_delay": poll_delay,
                "lease_seconds": lease_seconds,
                "shutdown_grace": shutdown_grace,
                "sweep_interval_seconds": sweep_interval_seconds,
                "stale_after_seconds": stale_after_seconds,
                "cancel_grace_seconds": cancel_grace_seconds,
                "idempotency_ttl_seconds": idempotency_ttl_seconds,
                "schedule_grace_seconds": schedule_grace_seconds,
                "schedule_refresh_seconds": schedule_refresh_seconds,
            }
        )
        if poll_delay <= 0:
            raise ConfigurationError("poll_delay must be positive")
        if lease_seconds < 1:
            raise ConfigurationError("lease_seconds must be at least 1")
        self.registry = registry
        # Enqueues only: registers workflows whose node types have executors only in the
        # workers (not checked here), and runs no worker.
        self.producer_only = producer_only
        self._close_store = close_store
        self.store: ExecutionStore = store if store is not None else InMemoryExecutionStore()
        self.key_prefix = key_prefix
        self.cache = WorkflowCache(
            self.store, max_size=cache_max_size, ttl_seconds=cache_ttl_seconds
        )
        self.poll_delay = poll_delay
        self.lease_seconds = lease_seconds
        self.max_output_bytes = max_output_bytes
        self.shutdown_grace = shutdown_grace
        self.sweep_interval_seconds = sweep_interval_seconds
        self.stale_after_seconds = stale_after_seconds
        self.cancel_grace_seconds = cancel_grace_seconds
        if idempotency_ttl_seconds is not None and idempotency_ttl_seconds <= 0:
            raise ConfigurationError("idempotency_ttl_seconds must be positive (or None)")
        self.idempotency_ttl_seconds = idempotency_ttl_seconds
        # At most this many node starts (built-ins aside) per window, across every worker
        # process of this key prefix; see spane_py/traffic.
        self.global_rate_limit = (
            None
            if global_rate_limit is None
            else RateLimit.parse(global_rate_limit, what="global_rate_limit")
        )
        self.limits = limits or DEFAULT_LIMITS
        if (
            isinstance(max_lost_deliveries, bool)
            or not isinstance(max_lost_deliveries, int)
            or (max_lost_deliveries < 1)
        ):
            raise ConfigurationError("max_lost_deliveries must be a positive integer")
        self.max_lost_deliveries = max_lost_deliveries
        if schedule_grace_seconds <= 0 or schedule_refresh_seconds <= 0:
            raise ConfigurationError("schedule_grace_seconds and _refresh_seconds must be > 0")
        # A tick is fired up to schedule_grace_seconds late (older: its missed policy);
        # workers look for schedules registered elsewhere every schedule_refresh_seconds.
        self.schedule_grace_seconds = schedule_grace_seconds
        self.schedule_refresh_seconds = schedule_refresh_seconds
        self._triggers_changed = asyncio.Event()  # wakes this process's schedulers
        # Event stream, metrics and tracing (docs/observability.md).
        self._observability = Observability(
            self,
            event_stream=event_stream,
            event_stream_maxlen=event_stream_maxlen,
            tracing=tracing,
        )
        if metrics_port is not None:
            check_port(metrics_port)
        self.metrics_port = metrics_port
        self.metrics_addr = metrics_addr
        # Signed webhooks: how far a signature's timestamp may be from this clock (unix
        # seconds; tests give their own), unless the trigger says (spane_py/triggers).
        if (
            isinstance(webhook_tolerance_seconds, bool)
            or not isinstance(webhook_tolerance_seconds, int | float)
            or not 1 <= webhook_tolerance_seconds <= MAX_WEBHOOK_TOLERANCE_S
        ):
            raise ConfigurationError(
                f"webhook_tolerance_seconds must be 1-{MAX_WEBHOOK_TOLERANCE_S}, got "
                f"{webhook_tolerance_seconds!r}"
            )
        self.webhook_tolerance_seconds = webhook_tolerance_seconds
        self.webhook_clock = webhook_clock
        # Registered by start(): lets an app module build its engine at import time.
        self._initial_workflows = list(workflows)
        self._redis_url = redis_url
        self._wired: Wiring | None = None  # the started engine's parts
        self._workers: list[tuple[SpaneWorker, asyncio.Task[None]]] = []
        self._started = False
        self._closed = False
        self._durability_checked = False  # warned once, at the first worker's start

    # Lifecycle -------------------------------------------------------------------
    async def start(self) -> None:
        """Connect to Redis (starting the embedded one if no URL is configured)."""
        if self._started:
            return
        if self._closed:
            raise ConfigurationError("this engine is closed; create a new one")
        await self.store.start()
        self._wired = await wire(
            store=self.store,
            cache=self.cache,
            registry=self.registry,
            key_prefix=self.key_prefix,
            redis_url=self._redis_url,
            global_rate_limit=self.global_rate_limit,
            limits=self.limits,
            runner_options=RunnerOptions(
                max_output_bytes=self.max_output_bytes,
                cancel_grace_seconds=self.cancel_grace_seconds,
                max_lost_deliveries=self.max_lost_deliveries,
            ),
        )
        await self._observability.start(self._wired.queue, self.store)
        self._started = True
        if self.metrics_port is not None:
            try:
                await self.serve_metrics(self.metrics_port, self.metrics_addr)
            except ConfigurationError:
                await self.close()
                raise
        for workflow in self._initial_workflows:
            await self.register_workflow(workflow)

    async def close(self, *, grace_seconds: float = 5.0) -> None:
        """Stop workers (running nodes get ``grace_seconds`` to finish), disconnect."""
        if self._closed:
            return
        self._closed = True
        await self.stop_workers(grace_seconds=grace_seconds)
        wired, self._wired = self._wired, None
        if wired is not None:  # entry jobs Redis refused: a last chance to send
            await wired.resender.close(timeout=min(grace_seconds, 5.0))
        await self._observability.close()
        if wired is not None:
            await unwire(wired)
        if self._close_store:
            await self.store.close()
        self._started = False

    async def __aenter__(self) -> WorkflowEngine:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    def _parts(self) -> Wiring:
        if self._wired is None:
            raise ConfigurationError("the engine is not started: call `await engine.start()`")
        return self._wired

    @property
    def queue(self) -> JobQueue:
        return self._parts().queue

    @property
    def notifier(self) -> SettleNotifier:
        return self._parts().notifier

    @property
    def lifecycle(self) -> Lifecycle:
        return self._parts().lifecycle

    @property
    def control(self) -> Control:
        return self._parts().control

    @property
    def traffic(self) -> TrafficControl:
        return self._parts().traffic

    @property
    def redis_url(self) -> str | None:
        """The Redis URL in use (the embedded server's socket when it runs)."""
        if self._wired is not None and self._wired.redis_url is not None:
            return self._wired.redis_url
        return self._redis_url or os.environ.get("REDIS_URL")

    # Workflows -------------------------------------------------------------------
    @scoped
    async def register_workflow(
        self,
        definition: WorkflowSource,
        change_notes: str | None = None,
    ) -> RegisteredWorkflow:
        """Validate and save a definition; a changed definition becomes a new version.

        Accepts a ``WorkflowDefinition``, a dict or JSON text in the SPANE shape (camelCase
        or snake_case), or a DSL ``Workflow`` (whose node functions are registered too).
        Registering an identical definition again is a no-op that returns the same version.
        Every problem found is raised in one ``WorkflowValidationError`` (its ``issues``);
        node types need an executor in ``registry`` unless the engine is ``producer_only``.
        """
        from spane_py.dsl import Workflow

        check_argument("change_notes", change_notes)
        await self.store.start()  # registering needs no Redis: the store is enough
        if isinstance(definition, Workflow):
            definition.register_nodes(self.registry)
            definition = definition.raw_definition()
        graph = validate_workflow(
            definition,
            self.limits,
            functools.partial(
                self.registry.workflow_issues, check_executors=not self.producer_only
            ),
        )
        triggers = await trigger_sync.prepare(self.store, graph.definition)  # writes nothing
        saved = await self.store.save_workflow(
            graph.definition, content_hash=graph.content_hash, change_notes=change_notes
        )
        await triggers.save(self.store)
        self._triggers_changed.set()
        self.cache.put(saved.record.version, graph)
        self.cache.set_latest(graph.workflow_id, saved.record.version)
        for warning in graph.warnings:
            logger.warning("workflow %s: %s", graph.workflow_id, warning)
        events.emit(
            events.WORKFLOW_REGISTERED,
            workflow_id=graph.workflow_id,
            version=saved.record.version,
            created=saved.created,
        )
        return RegisteredWorkflow(
            workflow_id=graph.workflow_id,
            version=saved.record.version,
            content_hash=graph.content_hash,
            created=saved.created,
            warnings=graph.warnings,
        )

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        """Registered workflows (latest version of each), ordered by id."""
        await self.store.start()
        return await self.store.list_workflows(active_only=active_only, limit=limit, offset=offset)

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await self.store.list_workflow_versions(workflow_id)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowDefinition:
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        record = await self.store.get_workflow(workflow_id, version)
        if record is None:
            what = f"version {version} of workflow" if version is not None else "workflow"
            raise WorkflowNotFoundError(
                f"{what} {workflow_id!r} is not registered", workflow_id=workflow_id
            )
        return record.definition

    # Executions ------------------------------------------------------------------
    @scoped
    async def enqueue_workflow(
        self,
        workflow_id: str,
        initial_data: Any = None,
        *,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        idempotency_key: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> str:
        """Start an execution of the latest version of ``workflow_id``; returns its id.

        ``priority`` 1-10 (higher first, default 5) applies to every node of the execution;
        ``delay`` (seconds or a timedelta) defers the start; an ``idempotency_key`` seen
        for this workflow within ``idempotency_ttl_seconds`` (24 h; None: forever) returns
        the first execution's id and creates nothing.
        Everything is checked before anything is written.
        """
        start = await starting.prepare(
            self.cache,
            workflow_id,
            priority=priority,
            delay=delay,
            metadata=metadata,
            limits=self.limits,
        )
        return await starting.start_one(
            self.store,
            self.queue,
            start,
            initial_data,
            idempotency_key,
            self.lifecycle.admit,
            idempotency_ttl_s=self.idempotency_ttl_seconds,
            resender=self._parts().resender,
        )

    @scoped
    async def enqueue_bulk(
        self,
        workflow_id: str,
        inputs: Sequence[Any],
        *,
        priority: int | None = None,
        delay: float | timedelta | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[str]:
        """Start one execution per item of ``inputs`` (their initial data); returns the ids,
        in order. One write to the store and one to Redis for all of them (SPANE's
        ``enqueueBulkWorkflows``). Every input is checked before anything is written."""
        start = await starting.prepare(
            self.cache,
            workflow_id,
            priority=priority,
            delay=delay,
            metadata=metadata,
            limits=self.limits,
        )
        return await starting.start_many(
            self.store,
            self.queue,
            start,
            inputs,
            self.lifecycle.admit,
            resender=self._parts().resender,
        )

    async def schedule_workflow(
        self,
        workflow_id: str,
        initial_data: Any = None,
        at: datetime | None = None,
        **options: Any,
    ) -> str:
        """Start an execution at ``at`` (a timezone-aware datetime; one in the past starts
        now). SPANE's ``scheduleWorkflow``; the other options are ``enqueue_workflow``'s."""
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidEnqueueOptionsError(
                f"workflow {workflow_id!r}: schedule_workflow needs `at` as a timezone-aware "
                f"datetime, got {at!r}",
                workflow_id=str(workflow_id),
            )
        if "delay" in options:
            raise InvalidEnqueueOptionsError(
                f"workflow {workflow_id!r}: give schedule_workflow `at` or enqueue_workflow "
                "`delay`, not both",
                workflow_id=str(workflow_id),
            )
        delay = max((at - datetime.now(UTC)).total_seconds(), 0.0)
        return await self.enqueue_workflow(workflow_id, initial_data, delay=delay, **options)

    async def run_workflow(
        self,
        workflow_id: str,
        initial_data: Any = None,
        *,
        timeout: float | None = 60.0,
        **options: Any,
    ) -> ExecutionState:
        """Enqueue and wait: the execution's final state."""
        execution_id = await self.enqueue_workflow(workflow_id, initial_data, **options)
        return await self.wait_for_execution(execution_id, timeout=timeout)

    async def get_execution(self, execution_id: str) -> ExecutionState:
        await self.store.start()
        snapshot = await self.store.get_snapshot(execution_id)
        if snapshot is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        return to_state(snapshot.execution, snapshot.nodes)

    async def get_trace(self, execution_id: str) -> ExecutionTrace:
        """The execution, its nodes, one span per node attempt (oldest first), its log lines
        and its child executions (sub-workflows), as one object."""
        execution = await self.get_execution(execution_id)
        spans = await self.store.get_spans(execution_id)
        logs = await self.store.get_logs(execution_id)
        children = []
        for child in await self.store.get_child_executions(execution_id):
            snap = await self.store.get_snapshot(child.execution_id)
            if snap is not None:
                children.append(to_state(snap.execution, snap.nodes))
        return ExecutionTrace(
            execution=execution,
            spans=[to_span(s) for s in spans],
            logs=[to_log(line) for line in logs],
            children=children,
        )

    async def wait_for_execution(
        self, execution_id: str, timeout: float | None = 60.0
    ) -> ExecutionState:
        """Wait until the execution completes, fails or is cancelled; its final state.

        Raises ``ExecutionWaitTimeoutError`` (a ``TimeoutError``) after ``timeout`` seconds.
        Works across processes: the store is checked again every so often.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        interval = 0.05
        notifier = self.notifier
        while True:
            fut = notifier.waiter(execution_id)
            try:
                state = await self.get_execution(execution_id)
                if state.status.is_terminal:
                    return state
                wait = interval
                if deadline is not None:
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise ExecutionWaitTimeoutError(
                            f"execution {execution_id!r} is still {state.status.value} after "
                            f"{timeout} s",
                            execution_id=execution_id,
                            workflow_id=state.workflow_id,
                        )
                    wait = min(wait, left)
                await asyncio.wait([fut], timeout=wait)
                interval = min(interval * 2, 1.0)
            finally:
                notifier.discard(execution_id, fut)

    # Control -----------------------------------------------------------------------
    @scoped
    async def pause_execution(self, execution_id: str) -> bool:
        """Stop starting new nodes of a running execution; running nodes finish. Returns
        False when it was paused already; refuses one that is not running."""
        await self.start()
        return await self.control.pause(execution_id)

    @scoped
    async def resume_execution(self, execution_id: str) -> bool:
        """Continue a paused execution exactly where it stopped."""
        await self.start()
        return await self.control.resume(execution_id)

    @scoped
    async def cancel_execution(self, execution_id: str, reason: str | None = None) -> bool:
        """Cancel a queued, running or paused execution and its sub-workflows: nothing more
        starts, running nodes see ``ctx.is_cancelled`` and are cancelled after
        ``cancel_grace_seconds``, the execution is marked cancelled."""
        check_argument("reason", reason, execution_id=execution_id)
        await self.start()
        return await self.control.cancel(execution_id, reason)

    @scoped
    async def pause_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        await self.start()
        return await self.control.bulk(self.control.pause, execution_ids)

    @scoped
    async def resume_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        await self.start()
        return await self.control.bulk(self.control.resume, execution_ids)

    @scoped
    async def cancel_executions(self, execution_ids: Sequence[str]) -> BulkResult:
        await self.start()
        return await self.control.bulk(self.control.cancel, execution_ids)

    # SPANE's names for the same actions.
    pause_workflow = pause_execution
    resume_workflow = resume_execution
    cancel_workflow = cancel_execution

    @scoped
    async def retry_execution(self, execution_id: str) -> None:
        """Re-run a failed execution from its failures, on its pinned version: failed nodes
        and what is downstream of them run again; results that succeeded are kept."""
        await self.start()
        await self.control.retry(execution_id)

    @scoped
    async def replay_execution(self, execution_id: str) -> str:
        """A new execution of the same workflow version with the same input; its metadata
        has ``replayed_from``. Returns the new execution's id."""
        await self.start()
        return await self.control.replay(execution_id, self.lifecycle.admit, self._parts().resender)

    replay_workflow = replay_execution

    @scoped
    async def resume(self, token: str, data: Any = None) -> str:
        """Complete the wait node waiting for ``token`` with ``data``; returns the
        execution id. A token works once; unknown, used, revoked or expired tokens raise
        ``ResumeTokenError`` (``details["reason"]`` says which)."""
        check_argument("token", token)
        await self.start()
        return await self.control.resume_token(token, data)

    async def validate_resume_token(self, token: str) -> ResumeTokenRecord:
        """The token's record if it can resume its node now; ``ResumeTokenError`` if not."""
        check_argument("token", token)
        await self.store.start()
        return await check_token(self.store, token)

    async def list_resume_tokens(
        self, execution_id: str | None = None, *, active_only: bool = True
    ) -> list[ResumeTokenRecord]:
        check_argument("execution_id", execution_id)
        await self.store.start()
        return await self.store.list_tokens(
            execution_id=execution_id, active_only=active_only, now=datetime.now(UTC)
        )

    async def revoke_resume_token(self, token: str) -> bool:
        """The token can no longer be used (its node keeps waiting, until its timeout or a
        cancel). False when it was unknown, used or revoked already."""
        check_argument("token", token)
        await self.store.start()
        return await self.store.revoke_token(token, datetime.now(UTC))

    async def get_dlq_items(
        self, limit: int = 100, offset: int = 0, *, include_retried: bool = False
    ) -> list[DlqRecord]:
        """Nodes that failed for good, newest first (SPANE's ``getDLQItems``)."""
        await self.store.start()
        return await self.store.list_dlq_items(
            limit=limit, offset=offset, include_retried=include_retried
        )

    @scoped
    async def retry_dlq_item(self, dlq_id: int) -> DlqRecord:
        """Run the item's node again (and what follows it): its execution goes back to
        running and can complete."""
        await self.start()
        return await self.control.retry_dlq(dlq_id)

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        await self.store.start()
        return await self.store.purge_dlq(older_than=older_than)

    # Triggers --------------------------------------------------------------------
    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleInfo]:
        """Schedules of registered workflows (their schedule triggers), by id, each with
        its next tick. Every worker process fires them: see ``spane_py/triggers``."""
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await schedules.list_schedules(self.store, workflow_id)

    async def pause_schedule(self, schedule_id: str) -> bool:
        """Stop firing until ``resume_schedule`` (registering the workflow again keeps it
        paused). False when it was paused already; ``ScheduleNotFoundError`` if unknown."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        return await schedules.set_paused(self.store, schedule_id, True)

    async def resume_schedule(self, schedule_id: str) -> bool:
        """Fire again from the next tick; ticks that passed while paused are not caught up."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        changed = await schedules.set_paused(self.store, schedule_id, False)
        self._triggers_changed.set()
        return changed

    async def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule. Its trigger stays in the definition, so registering the
        workflow again brings it back: pause it, or drop the trigger, to stop it for good."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        await schedules.remove(self.store, schedule_id)

    async def list_webhooks(self, workflow_id: str | None = None) -> list[WebhookRecord]:
        """Webhook bindings (path, method, workflow), by path and method."""
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await self.store.list_webhooks(workflow_id)

    async def trigger_webhook(
        self,
        path: str,
        method: str = "POST",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Start the workflow bound to ``method /path`` with the JSON ``body`` (the bytes or
        text received, an async iterable of its chunks, or an already parsed value) as its
        initial data; the execution ids. Checks and errors (404, 401, 413, 400), signatures
        and replays: ``spane_py/triggers/webhooks.py``.
        """
        await self.start()
        return await webhooks.trigger(
            self.store,
            self._start_triggered,
            self._active_definition,
            path,
            method,
            body,
            headers,
            self.limits,
            replay=ReplayMemory(self.queue.redis, self.key_prefix),
            clock=self.webhook_clock,
            tolerance_s=self.webhook_tolerance_seconds,
        )

    async def _start_triggered(
        self, workflow_id: str, data: Any, key: str | None, metadata: Mapping[str, Any]
    ) -> str:
        return await self.enqueue_workflow(
            workflow_id, data, idempotency_key=key, metadata=metadata
        )

    async def _is_active(self, workflow_id: str) -> bool:
        return await self.cache.latest_version(workflow_id) is not None

    async def _active_definition(self, workflow_id: str) -> WorkflowDefinition | None:
        version = await self.cache.latest_version(workflow_id)
        if version is None:
            return None
        return (await self.cache.get(workflow_id, version)).definition

    # Workers ---------------------------------------------------------------------
    def _make_worker(self, concurrency: int, *, burst: bool, handle_signals: bool) -> SpaneWorker:
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
            side_tasks=() if burst else (self._scheduler_task(),),
        )

    def _scheduler_task(self) -> PeriodicTask:
        scheduler = Scheduler(
            self.store,
            self._start_triggered,
            self._is_active,
            grace_seconds=self.schedule_grace_seconds,
            refresh_seconds=self.schedule_refresh_seconds,
        )
        return PeriodicTask(
            "scheduler",
            self.schedule_refresh_seconds,
            scheduler.run_once,
            first_delay=0.0,
            wake=self._triggers_changed,
        )

    async def start_workers(self, concurrency: int = 10) -> None:
        """Run a worker inside this process (development and tests)."""
        await self.start()
        await self._check_durability()
        worker = self._make_worker(concurrency, burst=False, handle_signals=False)
        self._listen_for_cancels()
        task = asyncio.create_task(self._run_scoped(worker), name="spane-worker")
        self._workers.append((worker, task))

    async def stop_workers(self, *, grace_seconds: float = 5.0) -> None:
        workers, self._workers = self._workers, []
        for worker, task in workers:
            await worker.stop(grace_seconds)
            if not task.done():
                task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:  # it stopped on its own (lease renewal gave up): logged there
                # The other workers still stop, and close() still releases connections.
                logger.warning("a worker had stopped with an error", exc_info=True)

    async def run_worker(self, concurrency: int = 10, *, burst: bool = False) -> None:
        """Run a worker in the foreground until SIGINT/SIGTERM (or, with ``burst``, until
        the queue is empty). This is what ``spane worker`` calls."""
        await self.start()
        await self._check_durability()
        worker = self._make_worker(concurrency, burst=burst, handle_signals=not burst)
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

    async def run_until_idle(self, concurrency: int = 10) -> None:
        """Process jobs until nothing is queued, scheduled or running (deterministic tests)."""
        await self.run_worker(concurrency, burst=True)

    # Observability ---------------------------------------------------------------
    async def subscribe(
        self,
        execution_id: str | None = None,
        *,
        workflow_id: str | None = None,
        after: str | None = None,
    ) -> EventSubscription:
        """Events from now on, as an async iterator of ``EngineEvent``: those of every
        process on this Redis and key prefix (workers included), only ``execution_id``'s
        or ``workflow_id``'s when given. Nothing emitted after this call returns is missed
        (``after``: start after that stream entry id instead; ``"0"``: from the oldest
        entry kept). End it with ``aclose()`` or ``async with``."""
        await self.start()
        return await self._observability.subscribe(
            execution_id=execution_id, workflow_id=workflow_id, after=after
        )

    async def metrics_text(self) -> str:
        """This engine's Prometheus metrics in the text exposition format (for an HTTP
        endpoint): counters of what it and its workers did, gauges read now."""
        return await self._observability.metrics_text()

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """This engine's Prometheus registry (its own, not the global one)."""
        return self._observability.metrics.registry

    async def serve_metrics(self, port: int = 0, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` (prometheus-client's HTTP server) until the engine closes;
        returns the port (``port=0``: a free one). ``metrics_port=`` does this at start."""
        await self.start()
        self.metrics_port = await self._observability.serve_metrics(port, addr)
        return self.metrics_port

    # Introspection ---------------------------------------------------------------
    async def get_queue_stats(self) -> QueueStats:
        return await self.queue.stats()

    async def ping(self) -> None:
        """Whether Redis answers: returns, or raises ``QueueError``."""
        await self.queue.ping()

    async def live_workers(self) -> list[LiveWorker]:
        """The worker processes of this key prefix that sent a heartbeat lately (any host),
        with the seconds since their last one."""
        return await WorkerPresence(self.queue.redis, prefix=self.key_prefix).live()

    async def purge(self) -> None:
        """Delete every Redis key of this key prefix — queued and scheduled jobs, leases,
        the event stream, traffic state — after flushing buffered events. For tests and
        maintenance: work in flight is lost from Redis (the store still knows it, and the
        sweeper sends what is pending again)."""
        await self.queue.purge()

    def cache_stats(self) -> CacheStats:
        return self.cache.stats()

    def traffic_stats(self) -> dict[str, dict[str, int]]:
        """What traffic control did in this process: ``{event: {node type: count}}`` for
        ``node.rate_limited``, ``breaker.rejected``, ``breaker.opened``, ...; the
        breaker transitions are counted by the process that made them."""
        return self.traffic.stats.snapshot()

    async def breaker_state(self, node_type: str) -> BreakerState:
        """The circuit breaker of ``node_type``, as every process sees it."""
        registered = self.registry.find(node_type)
        if registered is None or registered.circuit_breaker is None:
            raise ConfigurationError(f"node type {node_type!r} has no circuit breaker")
        return await self.traffic.breaker_state(node_type, registered.circuit_breaker)

    async def reset_breaker(self, node_type: str) -> None:
        """Close the circuit breaker of ``node_type`` now, in every process."""
        await self.traffic.breakers.reset(node_type)

    @scoped
    async def sweep(self, *, older_than: datetime | None = None, limit: int = 500) -> int:
        """Send again the jobs of nodes that have waited (or run) since ``older_than``
        (default: ``stale_after_seconds`` ago) — the outbox's second half: a child claimed
        in the store whose job never reached Redis, or a Redis that lost its data. A job
        still in Redis is left alone. Returns how many jobs were sent. Workers run this
        every ``sweep_interval_seconds``."""
        cutoff = older_than or datetime.now(UTC) - timedelta(seconds=self.stale_after_seconds)
        sent = await sweep_pending(
            self.store, self.queue, older_than=cutoff, limit=limit, cache=self.cache
        )
        await self.lifecycle.admit_all()  # an admission lost with a process
        return sent

    async def resend_node(self, execution_id: str, node_id: str) -> None:
        """Send a node's job again (what a duplicate delivery or a sweeper does)."""
        record = await self.store.get_execution(execution_id)
        if record is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        nodes = await self.store.get_node_results(execution_id)
        generation = nodes[node_id].generation if node_id in nodes else 0
        await self.queue.enqueue(
            [
                NodeJob(
                    execution_id, record.workflow_id, record.workflow_version, node_id, generation
                )
            ],
            priority=record.priority,
        )


__all__ = [
    "RegisteredWorkflow",
    "WorkflowEngine",
]
