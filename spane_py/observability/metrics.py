"""Prometheus metrics of one engine, named as SPANE's.

Counters and the node-duration histogram move with the events the engine emits (this
object is an event sink); the gauges (queue depth, dead-letter queue, running and paused
executions) are read from Redis and the store when metrics are collected — on a scrape,
not on a timer, so an idle deployment costs nothing and a scrape always sees the present.

The sink is on the path of every node hop, so it only bumps plain dictionaries (no
prometheus-client metric objects, whose every update takes a lock); a collector turns
them into metric families when prometheus-client asks. Each engine has its own
``CollectorRegistry``: several engines in one process (tests) do not collide in the
global one, and a worker's port serves only its engine.
"""

from __future__ import annotations

import asyncio
import logging
from bisect import bisect_left
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
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

# Counters of executions, by the event that moves them: name, help.
_EXECUTION_COUNTERS = {
    events.EXECUTION_STARTED: ("spane_workflows_enqueued", "Executions started (admitted)."),
    events.EXECUTION_COMPLETED: ("spane_workflows_completed", "Executions that completed."),
    events.EXECUTION_FAILED: ("spane_workflows_failed", "Executions that failed."),
    events.EXECUTION_CANCELLED: ("spane_workflows_cancelled", "Executions that were cancelled."),
}


@dataclass(frozen=True, slots=True)
class StateReading:
    """What the gauges show: read from Redis and the store when collected."""

    queued: int = 0
    scheduled: int = 0
    running: int = 0
    dlq: int = 0
    executions_running: int = 0
    executions_paused: int = 0
    # Per queue: (name, pending jobs, running jobs, age of the oldest pending one or None).
    queues: tuple[tuple[str, int, int, float | None], ...] = ()


ReadState = Callable[[], Awaitable[StateReading]]


class _Histogram:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(DURATION_BUCKETS) + 1)  # the last one: above every bound
        self.total = 0.0


class EngineMetrics(Collector):
    """The metrics of one engine: the event sink that counts, and the collector that
    reports (registered in ``registry`` with the gauges)."""

    def __init__(self, read_state: ReadState | None = None) -> None:
        self.executions: dict[tuple[str, str], int] = {}  # (event, workflow_id)
        self.nodes: dict[tuple[str, str, str], int] = {}  # (workflow_id, node_type, status)
        self.durations: dict[tuple[str, str], _Histogram] = {}  # (workflow_id, node_type)
        self.state = _StateCollector(read_state)
        self.registry = CollectorRegistry()
        self.registry.register(self)
        self.registry.register(self.state)

    # The event sink --------------------------------------------------------------------
    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        if name == events.NODE_SPAN:
            self._node_span(fields)
        elif name in _EXECUTION_COUNTERS:
            key = (name, str(fields.get("workflow_id") or ""))
            self.executions[key] = self.executions.get(key, 0) + 1

    def _node_span(self, fields: Mapping[str, Any]) -> None:
        span = fields.get("span")
        if span is None:
            return
        workflow_id = str(getattr(fields.get("execution"), "workflow_id", "") or "")
        node_type = str(span.attributes.get("type", ""))
        key = (workflow_id, node_type, span.status)
        self.nodes[key] = self.nodes.get(key, 0) + 1
        if span.ended_at is not None:
            seconds = max((span.ended_at - span.started_at).total_seconds(), 0.0)
            histogram = self.durations.get(key[:2])
            if histogram is None:
                histogram = self.durations[key[:2]] = _Histogram()
            histogram.counts[bisect_left(DURATION_BUCKETS, seconds)] += 1
            histogram.total += seconds

    # The collector -----------------------------------------------------------------------
    def describe(self) -> Iterator[Metric]:
        return self._families({}, {}, {})

    def collect(self) -> Iterator[Metric]:
        # Copies first: the loop thread may add keys while a scrape thread reads.
        durations = {k: (list(h.counts), h.total) for k, h in list(self.durations.items())}
        return self._families(dict(self.executions), dict(self.nodes), durations)

    def _families(
        self,
        executions: dict[tuple[str, str], int],
        nodes: dict[tuple[str, str, str], int],
        durations: dict[tuple[str, str], tuple[list[int], float]],
    ) -> Iterator[Metric]:
        for event, (name, doc) in _EXECUTION_COUNTERS.items():
            family = CounterMetricFamily(name, doc, labels=["workflow_id"])
            for (counted, workflow_id), value in sorted(executions.items()):
                if counted == event:
                    family.add_metric([workflow_id], value)
            yield family
        executed = CounterMetricFamily(
            "spane_nodes_executed",
            "Node attempts that ended, by how (status: succeeded, failed, retrying, skipped).",
            labels=["workflow_id", "node_type", "status"],
        )
        failed = CounterMetricFamily(
            "spane_nodes_failed", "Nodes that failed for good.", labels=["workflow_id", "node_type"]
        )
        for (workflow_id, node_type, status), value in sorted(nodes.items()):
            executed.add_metric([workflow_id, node_type, status], value)
            if status == "failed":
                failed.add_metric([workflow_id, node_type], value)
        yield executed
        yield failed
        duration = HistogramMetricFamily(
            "spane_node_duration_seconds",
            "Duration of node attempts.",
            labels=["workflow_id", "node_type"],
        )
        for labels, (counts, total) in sorted(durations.items()):
            cumulative, buckets = 0, []
            for bound, count in zip((*DURATION_BUCKETS, float("inf")), counts, strict=True):
                cumulative += count
                buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
            duration.add_metric(list(labels), buckets, total)
        yield duration

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
        jobs = GaugeMetricFamily(
            "spane_queue_jobs", "Node jobs of each queue, by state.", labels=["queue", "state"]
        )
        oldest = GaugeMetricFamily(
            "spane_queue_oldest_wait_seconds",
            "How long the oldest pending job of each queue has waited (0: none waits).",
            labels=["queue"],
        )
        for name, pending, running, age in s.queues:
            jobs.add_metric([name, "queued"], pending)
            jobs.add_metric([name, "running"], running)
            oldest.add_metric([name], age or 0.0)
        yield jobs
        yield oldest


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
