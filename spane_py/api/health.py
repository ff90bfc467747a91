"""``/healthz``: can this server reach Redis and the store, and are workers alive?

With an API token set, only a caller that presents it gets the details (latencies, error
texts, worker ids); the others get ``summary``: the status and each dependency's ok.

Each check has its own short time limit, so a hung dependency makes the probe answer
"failing" quickly instead of hanging the prober.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from spane_py.api import models
from spane_py.api.responses import live_worker, queue_info
from spane_py.engine.engine import WorkflowEngine

CHECK_TIMEOUT_S = 2.0
# A workflow id no one can register (ids are lowercase): reading it is a cheap, indexed
# round trip to the store that touches no real data.
_PROBE_WORKFLOW = "__SPANE_HEALTHZ__"


async def _check(probe: Callable[[], Awaitable[Any]]) -> models.Check:
    start = time.perf_counter()
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            await probe()
    except TimeoutError:
        return models.Check(ok=False, error=f"no answer within {CHECK_TIMEOUT_S:g} s")
    except Exception as exc:
        return models.Check(ok=False, error=f"{type(exc).__name__}: {exc}")
    return models.Check(ok=True, latency_ms=round((time.perf_counter() - start) * 1000, 3))


async def _workers(engine: WorkflowEngine) -> models.Workers:
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            live = await engine.live_workers()
    except Exception as exc:
        return models.Workers(live=0, workers=[], error=f"{type(exc).__name__}: {exc}")
    return models.Workers(live=len(live), workers=[live_worker(w) for w in live])


async def _unserved(engine: WorkflowEngine) -> list[models.QueueInfo]:
    """Queues that jobs wait on with no live worker consuming them (none when they cannot
    be read: the Redis check says why)."""
    try:
        async with asyncio.timeout(CHECK_TIMEOUT_S):
            queues = await engine.list_queues()
    except Exception:
        return []
    return [queue_info(q) for q in queues if q.unserved]


def summary(report: models.Health) -> models.HealthSummary:
    """What an unauthenticated caller sees: no error texts (they may hold hosts and driver
    messages), no latencies, no worker ids (host names and process ids)."""
    return models.HealthSummary(
        status=report.status,
        redis=models.CheckSummary(ok=report.redis.ok),
        store=models.CheckSummary(ok=report.store.ok),
        workers=models.WorkersSummary(live=report.workers.live),
    )


async def health(engine: WorkflowEngine) -> models.Health:
    async def redis() -> None:
        await engine.ping()

    async def store() -> None:
        await engine.store.get_workflow_version(_PROBE_WORKFLOW)

    redis_check, store_check, workers, unserved = await asyncio.gather(
        _check(redis), _check(store), _workers(engine), _unserved(engine)
    )
    if not (redis_check.ok and store_check.ok):
        status = "failing"
    elif workers.live == 0 or unserved:
        status = "degraded"
    else:
        status = "ok"
    return models.Health(
        status=status,
        redis=redis_check,
        store=store_check,
        workers=workers,
        unserved_queues=unserved,
    )


__all__ = ["CHECK_TIMEOUT_S", "health", "summary"]
