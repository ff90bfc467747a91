"""Prometheus metrics of one engine, named as SPANE's.

Counters and the node-duration histogram move with the events the engine emits (this
object is an event sink); the gauges (queue depth, dead-letter queue, running and paused
executions) are read from Redis and the store when metrics are collected — on a scrape,
not on a timer, so an idle deployment costs nothing and a scrape always sees the present.

Each engine has its own ``CollectorRegistry``: several engines in one process (tests) do
not collide in the global one, and a worker's port serves only its engine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spane_py.observability import events

logger = logging.getLogger("spane_py.metrics")

# Seconds: from a no-op node (a millisecond) to a long call (ten minutes).
DURATION_BUCKETS = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    300.0,
    600.0,
)
# How long a scrape from another thread waits for the engine's loop to read the gauges.
READ_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True)
class StateReading:
    """What the gauges show: read from Redis and the store when collected."""

    queued: int = 0
    scheduled: int = 0
    running: int = 0
    dlq: int = 0
    executions_running: int = 0
    executions_paused: int = 0


ReadState = Callable[[], Awaitable[StateReading]]


class EngineMetrics:
    """The metrics registry of one engine and the event sink that feeds it."""

    def __init__(self, read_state: ReadState | None = None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        wf = ["workflow_id"]
        self.enqueued = Counter(
            "spane_workflows_enqueued", "Executions started (admitted).", wf, registry=r
        )
        self.completed = Counter(
            "spane_workflows_completed", "Executions that completed.", wf, registry=r
        )
        self.failed = Counter("spane_workflows_failed", "Executions that failed.", wf, registry=r)
        self.cancelled = Counter(
            "spane_workflows_cancelled", "Executions that were cancelled.", wf, registry=r
        )
        node = ["workflow_id", "node_type"]
        self.nodes_executed = Counter(
            "spane_nodes_executed",
            "Node attempts that ended, by how (status: succeeded, failed, retrying, skipped).",
            [*node, "status"],
            registry=r,
        )
        self.nodes_failed = Counter(
            "spane_nodes_failed", "Nodes that failed for good.", node, registry=r
        )
        self.duration = Histogram(
            "spane_node_duration_seconds",
            "Duration of node attempts.",
            node,
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.state = _StateCollector(read_state)
        r.register(self.state)
        # Label values -> child: labels() validates and locks on every call.
        self._children: dict[tuple[Any, ...], Any] = {}
        self._handlers: dict[str, Callable[[Mapping[str, Any]], None]] = {
            events.EXECUTION_STARTED: self._counter(self.enqueued),
            events.EXECUTION_COMPLETED: self._counter(self.completed),
            events.EXECUTION_FAILED: self._counter(self.failed),
            events.EXECUTION_CANCELLED: self._counter(self.cancelled),
            events.NODE_SPAN: self._node_span,
        }

    # The event sink --------------------------------------------------------------------
    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        handler = self._handlers.get(name)
        if handler is not None:
            handler(fields)

    def _child(self, metric: Any, *labels: str) -> Any:
        key = (id(metric), *labels)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*labels)
        return child

    def _counter(self, metric: Counter) -> Callable[[Mapping[str, Any]], None]:
        def count(fields: Mapping[str, Any]) -> None:
            self._child(metric, str(fields.get("workflow_id") or "")).inc()

        return count

    def _node_span(self, fields: Mapping[str, Any]) -> None:
        span, execution = fields.get("span"), fields.get("execution")
        if span is None:
            return
        workflow_id = getattr(execution, "workflow_id", "") or ""
        node_type = str(span.attributes.get("type", ""))
        self._child(self.nodes_executed, workflow_id, node_type, span.status).inc()
        if span.status == "failed":
            self._child(self.nodes_failed, workflow_id, node_type).inc()
        if span.ended_at is not None:
            seconds = (span.ended_at - span.started_at).total_seconds()
            self._child(self.duration, workflow_id, node_type).observe(max(seconds, 0.0))

    # Output ----------------------------------------------------------------------------
    async def text(self) -> str:
        """Every metric in the Prometheus text format, gauges read now."""
        await self.state.refresh()
        return generate_latest(self.registry).decode()


class _StateCollector(Collector):
    """The gauges, from a reading of Redis and the store.

    ``refresh()`` reads on the engine's loop. A scrape served by prometheus-client's HTTP
    server runs on its own thread: it asks the loop for a fresh reading and waits for it
    (``READ_TIMEOUT_S``), falling back to the last one.
    """

    def __init__(self, read: ReadState | None) -> None:
        self.read = read
        self.last = StateReading()
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, loop: asyncio.AbstractEventLoop) -> None:
        """Scrapes from other threads read the gauges on ``loop``."""
        self._loop = loop

    async def refresh(self) -> None:
        self._loop = asyncio.get_running_loop()
        if self.read is not None:
            try:
                self.last = await self.read()
            except Exception as exc:  # a scrape must answer even when a backend does not
                logger.warning("could not read the queue and store gauges: %s", exc)

    def _refresh_from_thread(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed() or _runs_here(loop):
            return
        future = asyncio.run_coroutine_threadsafe(self.refresh(), loop)
        try:
            future.result(READ_TIMEOUT_S)
        except Exception as exc:
            future.cancel()
            logger.warning("metrics scrape: gauges not refreshed (%s)", exc)

    def describe(self) -> Iterator[Metric]:
        return self._families(StateReading())

    def collect(self) -> Iterator[Metric]:
        self._refresh_from_thread()
        return self._families(self.last)

    def _families(self, s: StateReading) -> Iterator[Metric]:
        depth = GaugeMetricFamily(
            "spane_queue_depth", "Node jobs in Redis, by state.", labels=["state"]
        )
        depth.add_metric(["queued"], s.queued)
        depth.add_metric(["scheduled"], s.scheduled)
        depth.add_metric(["running"], s.running)
        yield depth
        yield GaugeMetricFamily("spane_dlq_size", "Dead-letter items not yet retried.", value=s.dlq)
        yield GaugeMetricFamily(
            "spane_workflows_active", "Executions running.", value=s.executions_running
        )
        yield GaugeMetricFamily(
            "spane_workflows_paused", "Executions paused.", value=s.executions_paused
        )


def _runs_here(loop: asyncio.AbstractEventLoop) -> bool:
    """True on the thread running ``loop`` (which must not wait for itself)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


class MetricsServer:
    """prometheus-client's HTTP server for one engine's registry, on its own thread
    (``/metrics``; port 0 picks a free port, ``port`` tells which)."""

    def __init__(self, metrics: EngineMetrics, port: int, addr: str = "0.0.0.0") -> None:
        self.metrics = metrics
        self.requested_port = port
        self.addr = addr
        self._httpd: Any = None

    async def start(self) -> None:
        self.metrics.state.attach(asyncio.get_running_loop())
        self._httpd, _thread = start_http_server(
            self.requested_port, self.addr, registry=self.metrics.registry
        )

    @property
    def port(self) -> int | None:
        return None if self._httpd is None else int(self._httpd.server_address[1])

    async def close(self) -> None:
        httpd, self._httpd = self._httpd, None
        if httpd is not None:
            # shutdown() waits for the serving thread, which may be waiting for this loop.
            await asyncio.to_thread(_stop, httpd)


def _stop(httpd: Any) -> None:
    httpd.shutdown()
    httpd.server_close()
