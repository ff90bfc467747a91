"""Health, metrics, queue and counts: what operators and the dashboard's header read."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse

from spane_py.api import models, optional
from spane_py.api.deps import Engine, check_token, presented_token, require_token
from spane_py.api.errors import ErrorBody
from spane_py.api.health import health, summary
from spane_py.api.responses import live_worker, queue_info
from spane_py.state import ExecutionStatus

# /healthz is open (probes carry no token), its details are not; /metrics takes the token
# when one is set.
probes = APIRouter(tags=["system"])
router = APIRouter(tags=["system"])

NOT_IMPLEMENTED: dict[int | str, dict[str, Any]] = {
    501: {"model": ErrorBody, "description": "The engine has no metrics_text()"}
}


@probes.get(
    "/healthz",
    response_model=models.Health | models.HealthSummary,
    summary="Health",
    responses={
        401: {"model": ErrorBody, "description": "A token was presented, and it is wrong"},
        503: {
            "model": models.Health | models.HealthSummary,
            "description": "Redis or the store is down",
        },
    },
)
async def healthz(engine: Engine, request: Request) -> JSONResponse:
    """Redis and the store answer (else 503), and how many workers beat recently (none:
    "degraded", still 200: this server itself works). With an API token set, a request
    without it gets only the status and each dependency's ``ok`` (and the live workers'
    count); with it, the latencies, errors and worker ids too. A wrong token is a 401."""
    detailed = request.app.state.api_token is None or presented_token(request) is not None
    if detailed:
        check_token(request)  # a token that is presented must be the right one
    report = await health(engine)
    status = 503 if report.status == "failing" else 200
    body = report if detailed else summary(report)
    return JSONResponse(body.model_dump(mode="json"), status_code=status)


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


@router.get("/queues", response_model=list[models.QueueInfo], summary="Queues")
async def list_queues(engine: Engine) -> list[models.QueueInfo]:
    """Every queue: its pending and running jobs, how long its oldest pending job has
    waited, and how many live workers consume it (``unserved``: jobs wait and none does)."""
    return [queue_info(q) for q in await engine.list_queues()]


@router.get("/workers", response_model=list[models.LiveWorker], summary="Live workers")
async def list_workers(engine: Engine) -> list[models.LiveWorker]:
    """The workers that sent a heartbeat lately, with the queues they consume."""
    return [live_worker(w) for w in await engine.live_workers()]


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
