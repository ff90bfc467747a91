"""An engine's observability: its event stream, event history, Prometheus metrics and
tracing, installed as event sinks when the engine starts and removed when it closes.

Kept out of ``engine.py`` so that the facade only forwards: ``subscribe``,
``metrics_text`` and ``serve_metrics`` are thin calls into this object.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

from spane_py.clock import SYSTEM_CLOCK, Clock
from spane_py.errors import ConfigurationError
from spane_py.observability import events
from spane_py.observability.history import EventHistory
from spane_py.observability.metrics import EngineMetrics, MetricsServer, StateReading
from spane_py.observability.stream import (
    DEFAULT_MAXLEN,
    EventSubscription,
    StreamPublisher,
    subscribe,
)
from spane_py.queue.client import JobQueue
from spane_py.state import ExecutionStatus
from spane_py.stores.base import ExecutionStore

logger = logging.getLogger("spane_py.engine")

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def scoped(method: F) -> F:
    """An engine method whose events belong to its engine (``events.scope``): with several
    engines in one process, each one's stream and metrics see only its own events."""

    @functools.wraps(method)
    async def call(self: object, *args: Any, **kwargs: Any) -> Any:
        with events.scope(self):
            return await method(self, *args, **kwargs)

    return cast(F, call)


def check_port(port: object) -> None:
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigurationError(f"metrics port must be 0-65535, got {port!r}")


class Observability:
    def __init__(
        self,
        owner: object,
        *,
        event_stream: bool = True,
        event_stream_maxlen: int = DEFAULT_MAXLEN,
        tracing: Any = False,
        event_history: bool = False,
    ) -> None:
        if isinstance(event_stream_maxlen, bool) or not isinstance(event_stream_maxlen, int):
            raise ConfigurationError("event_stream_maxlen must be a positive integer")
        if event_stream_maxlen < 1:
            raise ConfigurationError("event_stream_maxlen must be a positive integer")
        self.owner = owner
        self.event_stream = event_stream
        self.event_stream_maxlen = event_stream_maxlen
        self.tracing = tracing
        self.event_history = event_history
        self.metrics = EngineMetrics()
        self._queue: JobQueue | None = None
        self._store: ExecutionStore | None = None
        self._publisher: StreamPublisher | None = None
        self._history: EventHistory | None = None
        self._server: MetricsServer | None = None
        self._tracer: object | None = None  # the exporter this engine enabled

    async def start(
        self, queue: JobQueue, store: ExecutionStore, *, clock: Clock = SYSTEM_CLOCK
    ) -> None:
        if self.tracing is not False and self.tracing is not None:
            self._start_tracing()  # first: the one step that can refuse
        self._queue, self._store = queue, store
        self.metrics.state.read = self._read_state
        events.add_sink(self.metrics, owner=self.owner)
        if self.event_stream:
            self._publisher = StreamPublisher(
                queue.redis, self.stream_key, maxlen=self.event_stream_maxlen
            )
            events.add_sink(self._publisher, owner=self.owner)
            # Buffered events written after a purge would bring the stream back.
            queue.before_purge.append(self._publisher.flush)
        if self.event_history:
            self._history = EventHistory(store, clock)
            events.add_sink(self._history, owner=self.owner)

    def _start_tracing(self) -> None:
        try:
            from spane_py.observability import otel
        except ImportError as exc:
            raise ConfigurationError(
                f"tracing needs the otel extra ({exc.name or exc} is not installed): "
                "pip install 'spane-py[otel]'"
            ) from exc
        provider = None if self.tracing is True else self.tracing
        try:
            self._tracer = otel.enable(provider)
        except TypeError as exc:
            raise ConfigurationError(str(exc)) from exc

    @property
    def stream_key(self) -> str:
        assert self._queue is not None
        return f"{self._queue.prefix}:events"

    async def close(self) -> None:
        events.remove_sink(self.metrics)
        self.metrics.state.read = None  # Redis and the store go away: gauges keep their last
        if self._publisher is not None:
            events.remove_sink(self._publisher)
            if self._queue is not None:
                self._queue.before_purge.remove(self._publisher.flush)
            await self._publisher.close()
            self._publisher = None
        if self._history is not None:
            events.remove_sink(self._history)
            await self._history.close()
            self._history = None
        if self._server is not None:
            await self._server.close()
            self._server = None
        if self._tracer is not None:
            from spane_py.observability import otel

            if otel.active() is self._tracer:
                otel.disable()
            self._tracer = None

    # Event stream ----------------------------------------------------------------------
    async def subscribe(
        self,
        *,
        execution_id: str | None,
        workflow_id: str | None,
        after: str | None,
    ) -> EventSubscription:
        queue = self._started_queue()
        if self._publisher is not None:
            # What this process emitted before the call is before the subscription's start.
            await self._publisher.flush()
        return await subscribe(
            queue.blocking_client,
            self.stream_key,
            execution_id=execution_id,
            workflow_id=workflow_id,
            after=after,
        )

    # Event history ---------------------------------------------------------------------
    async def flush_history(self) -> None:
        """Write the events this process buffered for the history (a reader sees them)."""
        if self._history is not None:
            await self._history.flush()

    # Metrics ---------------------------------------------------------------------------
    async def metrics_text(self) -> str:
        return await self.metrics.text()

    async def serve_metrics(self, port: int, addr: str) -> int:
        """Serve ``/metrics`` on ``port`` (0: any free one); returns the port. Once per
        engine: a later call returns the port in use."""
        check_port(port)
        if self._server is None:
            server = MetricsServer(self.metrics, port, addr)
            try:
                await server.start()
            except OSError as exc:
                raise ConfigurationError(
                    f"cannot serve metrics on {addr}:{port}: {exc.strerror or exc}"
                ) from exc
            self._server = server
            logger.info("serving Prometheus metrics on %s:%d/metrics", addr, server.port)
        assert self._server.port is not None
        return self._server.port

    @property
    def metrics_port(self) -> int | None:
        return None if self._server is None else self._server.port

    async def _read_state(self) -> StateReading:
        queue, store = self._started_queue(), self._store
        assert store is not None
        stats = await queue.stats()
        lanes = await queue.lane_stats()
        return StateReading(
            queued=stats.queued,
            scheduled=stats.scheduled,
            running=stats.running,
            dlq=await store.get_dlq_count(),
            executions_running=await store.get_execution_count(status=ExecutionStatus.RUNNING),
            executions_paused=await store.get_execution_count(status=ExecutionStatus.PAUSED),
            queues=tuple(
                (name, lane.queued, lane.running, lane.oldest_waiting_s)
                for name, lane in lanes.items()
            ),
        )

    def _started_queue(self) -> JobQueue:
        if self._queue is None:
            raise ConfigurationError("the engine is not started: call `await engine.start()`")
        return self._queue
