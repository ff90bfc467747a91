"""``WorkflowEngine``'s observability and introspection: events, metrics, stats, breakers."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry

from spane_py._text import check_argument
from spane_py.engine.cache import CacheStats
from spane_py.engine.core import EngineCore
from spane_py.engine.queue_view import QueueInfo, queue_infos
from spane_py.errors import ConfigurationError
from spane_py.observability.stream import EventSubscription
from spane_py.queue.client import QueueStats
from spane_py.queue.presence import LiveWorker, WorkerPresence
from spane_py.records import EventRecord
from spane_py.traffic.breakers import BreakerState


class ObserveMethods(EngineCore):
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

    async def get_events(
        self,
        execution_id: str | None = None,
        *,
        types: str | Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """The event history (docs/observability.md): recorded events, oldest first, at
        most ``limit`` — only ``execution_id``'s, only of ``types`` (a name or several:
        ``"node.failed"``, ...), ``at`` from ``since`` (inclusive) to ``until``
        (exclusive), when given. What this process emitted is written first."""
        check_argument("execution_id", execution_id)
        wanted = [types] if isinstance(types, str) else None if types is None else list(types)
        for name in wanted or ():
            check_argument("types", name)
        await self.store.start()
        await self._observability.flush_history()
        return await self.store.get_events(
            execution_id=execution_id, types=wanted, since=since, until=until, limit=limit
        )

    async def metrics_text(self) -> str:
        """This engine's Prometheus metrics in the text exposition format (for an HTTP
        endpoint): counters of what it and its workers did, gauges read now."""
        return await self._observability.metrics_text()

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """This engine's Prometheus registry (its own, not the global one)."""
        return self._observability.metrics.registry

    async def get_queue_stats(self) -> QueueStats:
        return await self.queue.stats()

    async def ping(self) -> None:
        """Whether Redis answers: returns, or raises ``QueueError``."""
        await self.queue.ping()

    async def live_workers(self) -> list[LiveWorker]:
        """The worker processes of this key prefix that sent a heartbeat lately (any host),
        with the seconds since their last one."""
        return await WorkerPresence(self.queue.redis, prefix=self.key_prefix).live()

    async def list_queues(self) -> list[QueueInfo]:
        """Every queue — the default one, those jobs were sent to, those live workers
        consume —: its pending and running jobs, the age of its oldest pending job and how
        many live workers consume it (``unserved``: jobs wait and none does)."""
        lanes = await self.queue.lane_stats()
        workers = await self.live_workers()
        return queue_infos(lanes, workers)

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
