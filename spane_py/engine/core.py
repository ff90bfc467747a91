"""``EngineCore``: what every part of ``WorkflowEngine`` stands on — its options, starting
and closing (the parts come from ``engine/wiring.py``), registering workflows and starting
executions. ``WorkflowEngine`` (engine/engine.py) adds queries and control, and the methods
of engine/worker_methods.py, engine/trigger_methods.py and engine/observe_methods.py."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, Union

from spane_py._text import check_argument
from spane_py.archive import Archive
from spane_py.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import MAX_WEBHOOK_TOLERANCE_S, WorkflowDefinition
from spane_py.definitions.validation import validate_workflow
from spane_py.engine import starting
from spane_py.engine.cache import WorkflowCache
from spane_py.engine.control import Control
from spane_py.engine.lifecycle import Lifecycle
from spane_py.engine.notify import SettleNotifier
from spane_py.engine.observing import Observability, check_port, scoped
from spane_py.engine.options import check_durations
from spane_py.engine.wiring import RunnerOptions, Wiring, unwire, wire
from spane_py.errors import ConfigurationError
from spane_py.limits import DEFAULT_LIMITS, Limits
from spane_py.observability import events
from spane_py.observability.stream import DEFAULT_MAXLEN
from spane_py.queue.client import JobQueue
from spane_py.queue.worker import SpaneWorker
from spane_py.registry import NodeRegistry
from spane_py.retention import Retention
from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.traffic.control import TrafficControl
from spane_py.traffic.policies import RateLimit
from spane_py.triggers import sync as trigger_sync

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


class EngineCore:
    """The engine's state and its foundations (see ``WorkflowEngine`` for the whole)."""

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
        clock: Clock | None = None,
        threads: int | None = None,
        max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES,
        event_history: bool = False,
        retention: Retention | None = None,
        retention_interval_seconds: float = 60.0,
        archive_dir: str | os.PathLike[str] | None = None,
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
                "retention_interval_seconds": retention_interval_seconds,
            }
        )
        if poll_delay <= 0 or retention_interval_seconds <= 0:
            raise ConfigurationError("poll_delay and retention_interval_seconds must be positive")
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
        # Event stream, event history, metrics and tracing (docs/observability.md).
        self._observability = Observability(
            self,
            event_stream=event_stream,
            event_stream_maxlen=event_stream_maxlen,
            tracing=tracing,
            event_history=event_history,
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
        # Every time the engine records or decides on (spane_py/clock.py; tests skip it).
        if clock is not None and not isinstance(clock, Clock):
            raise ConfigurationError(f"clock must have a now() method, got {clock!r}")
        self.clock: Clock = clock if clock is not None else SYSTEM_CLOCK
        # Threads that run plain ``def`` executors (spane_py/engine/threads.py; one pool per
        # process): sized when a worker starts here. None: the pool's default.
        if threads is not None and (
            isinstance(threads, bool) or not isinstance(threads, int) or threads < 1
        ):
            raise ConfigurationError(f"threads must be a positive integer, got {threads!r}")
        self.threads = threads
        # The largest artifact a node may put (ctx.put_artifact; spane_py/artifacts.py).
        if (
            isinstance(max_artifact_bytes, bool)
            or not isinstance(max_artifact_bytes, int)
            or max_artifact_bytes < 1
        ):
            raise ConfigurationError(
                f"max_artifact_bytes must be a positive integer, got {max_artifact_bytes!r}"
            )
        self.max_artifact_bytes = max_artifact_bytes
        # Retention (engine/pruning.py): how long finished executions are kept (None:
        # forever, unless their workflow says), and where they are archived first.
        if retention is not None and not isinstance(retention, Retention):
            raise ConfigurationError(f"retention must be a Retention, got {retention!r}")
        self.retention, self.retention_interval_seconds = retention, retention_interval_seconds
        self.archive = None if archive_dir is None else Archive(archive_dir)
        # Registered by start(): lets an app module build its engine at import time.
        self._initial_workflows = list(workflows)
        self._redis_url = redis_url
        self._wired: Wiring | None = None  # the started engine's parts
        # The latest graph of each workflow registered by this engine (its workers' queues).
        self._registered: dict[str, WorkflowGraph] = {}
        # When the sweeper last warned of each queue that jobs wait on and no worker consumes.
        self._unserved_warned: dict[str, float] = {}
        self._workers: list[tuple[SpaneWorker, asyncio.Task[None]]] = []
        self._started = False
        self._closed = False
        self._durability_checked = False  # warned once, at the first worker's start

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
            clock=self.clock,
            runner_options=RunnerOptions(
                max_output_bytes=self.max_output_bytes,
                cancel_grace_seconds=self.cancel_grace_seconds,
                max_lost_deliveries=self.max_lost_deliveries,
                max_artifact_bytes=self.max_artifact_bytes,
            ),
        )
        await self._observability.start(self._wired.queue, self.store, clock=self.clock)
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

    async def __aenter__(self) -> Self:
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

    # The started parts, for the engine's own modules and for tests that inspect Redis.
    # Not public API: users, the HTTP API and the CLI use the engine's methods (ping,
    # live_workers, purge, get_queue_stats, breaker_state, ...) instead.
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
        self._registered[graph.workflow_id] = graph
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
        version: int | None = None,
    ) -> str:
        """Start an execution of the latest version of ``workflow_id`` (or of ``version``,
        an earlier one still stored); returns its id.

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
            clock=self.clock,
            routes=self._parts().routes,
            version=version,
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
            clock=self.clock,
            routes=self._parts().routes,
        )
        return await starting.start_many(
            self.store,
            self.queue,
            start,
            inputs,
            self.lifecycle.admit,
            resender=self._parts().resender,
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

    async def serve_metrics(self, port: int = 0, addr: str = "0.0.0.0") -> int:
        """Serve ``/metrics`` (prometheus-client's HTTP server) until the engine closes;
        returns the port (``port=0``: a free one). ``metrics_port=`` does this at start."""
        await self.start()
        self.metrics_port = await self._observability.serve_metrics(port, addr)
        return self.metrics_port
