"""Health, metrics, queue and counts: what operators and the dashboard's header read."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse, PlainTextResponse

from spane_py.api import models, optional
from spane_py.api.deps import Engine, require_token
from spane_py.api.errors import ErrorBody
from spane_py.api.health import health
from spane_py.state import ExecutionStatus

# /healthz is open (probes carry no token); /metrics takes the token when one is set.
probes = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])

NOT_IMPLEMENTED: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorBody, "description": "The engine has no metrics_text()"}
}


@probes.get(
    "/healthz",
    response_model=models.Health,
    summary="Health",
    responses={503: {"model": models.Health, "description": "Redis or the store is down"}},
)
async def healthz(engine: Engine) -> JSONResponse:
    """Redis and the store answer (else 503), and how many workers beat recently (none:
    "degraded", still 200: this server itself works)."""
    report = await health(engine)
    status = 503 if report.status == "failing" else 200
    return JSONResponse(report.model_dump(mode="json"), status_code=status)


@probes.get(
    "/metrics",
    response_class=PlainTextResponse,
    summary="Prometheus metrics",
    responses=NOT_IMPLEMENTED,
    dependencies=[Depends(require_token)],
)
async def metrics(engine: Engine) -> PlainTextResponse:
    """The Prometheus text exposition of the engine's counters and gauges."""
    method = optional.feature(engine, "metrics_text", "/metrics")
    text = await optional.call(method)
    return PlainTextResponse(str(text), media_type="text/plain; version=0.0.4; charset=utf-8")


@router.get("/queue", response_model=models.QueueStats, summary="Queue depth")
async def queue_stats(engine: Engine) -> models.QueueStats:
    """Node jobs queued (due), scheduled (later) and running, across workers."""
    stats = await engine.get_queue_stats()
    return models.QueueStats(queued=stats.queued, scheduled=stats.scheduled, running=stats.running)


@router.get("/stats", response_model=models.Stats, summary="Counts")
async def get_stats(
    engine: Engine,
    workflow_id: Annotated[
        str | None, Query(max_length=128, description="Count only this workflow's executions")
    ] = None,
) -> models.Stats:
    """Executions per status, workflows, dead-letter items and the queue: the dashboard's
    header."""
    store = engine.store
    await store.start()
    statuses = list(ExecutionStatus)
    counts = await asyncio.gather(
        *(store.get_execution_count(workflow_id=workflow_id, status=s) for s in statuses)
    )
    q = await engine.get_queue_stats()
    return models.Stats(
        executions=dict(zip(statuses, counts, strict=True)),
        workflows=await store.get_workflow_count(),
        dlq=await store.get_dlq_count(),
        queue=models.QueueStats(queued=q.queued, scheduled=q.scheduled, running=q.running),
    )


__all__ = ["probes", "router"]
