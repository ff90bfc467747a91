"""Control of executions: pause, resume, cancel, retry, replay, one or many at once.

A refused action (pausing a completed execution, retrying a running one) is a 409 whose
message says why; nothing changes.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Path

from spane_py.api import models
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody

router = APIRouter(prefix="/executions", tags=["control"])

ExecutionIdPath = Annotated[str, Path(min_length=1, max_length=100)]
RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such execution"},
    409: {"model": ErrorBody, "description": "The execution's state refuses the action"},
}
BulkAction = Literal["pause", "resume", "cancel", "retry", "replay"]


# Registered before the per-execution routes below: "bulk" must not be taken for an id.
@router.post(
    "/bulk/{action}",
    response_model=models.BulkControlResult,
    summary="Pause, resume, cancel, retry or replay many executions",
)
async def bulk_control(
    engine: Engine, action: BulkAction, body: models.BulkControlRequest
) -> models.BulkControlResult:
    """Applies the action to each execution; one that refuses it (or does not exist) is
    listed under ``errors`` with the reason and does not stop the others. A replay's
    ``created`` maps each execution to its new one; a cancel keeps ``reason``."""
    ids = body.execution_ids
    if action == "pause":
        result = await engine.pause_executions(ids)
    elif action == "resume":
        result = await engine.resume_executions(ids)
    elif action == "cancel":
        result = await engine.cancel_executions(ids, body.reason)
    elif action == "retry":
        result = await engine.retry_executions(ids)
    else:
        result = await engine.replay_executions(ids)
    return models.BulkControlResult(
        action=action,
        changed=list(result.changed),
        unchanged=list(result.unchanged),
        errors=dict(result.errors),
        created=dict(result.created),
    )


async def _result(
    engine: Engine, execution_id: str, action: Any, changed: bool
) -> models.ControlResult:
    state = await engine.get_execution(execution_id)
    return models.ControlResult(
        execution_id=execution_id, action=action, changed=changed, status=state.status
    )


@router.post(
    "/{execution_id}/pause",
    response_model=models.ControlResult,
    summary="Pause an execution",
    responses=RESPONSES,
)
async def pause_execution(engine: Engine, execution_id: ExecutionIdPath) -> models.ControlResult:
    """No new node starts; running nodes finish. ``changed`` is false when it was paused
    already."""
    changed = await engine.pause_execution(execution_id)
    return await _result(engine, execution_id, "pause", changed)


@router.post(
    "/{execution_id}/resume",
    response_model=models.ControlResult,
    summary="Resume a paused execution",
    responses=RESPONSES,
)
async def resume_execution(engine: Engine, execution_id: ExecutionIdPath) -> models.ControlResult:
    changed = await engine.resume_execution(execution_id)
    return await _result(engine, execution_id, "resume", changed)


@router.post(
    "/{execution_id}/cancel",
    response_model=models.ControlResult,
    summary="Cancel an execution",
    responses=RESPONSES,
)
async def cancel_execution(
    engine: Engine,
    execution_id: ExecutionIdPath,
    body: Annotated[models.CancelRequest | None, Body()] = None,
) -> models.ControlResult:
    """Cancel a queued, running or paused execution and its sub-workflows."""
    changed = await engine.cancel_execution(execution_id, body.reason if body else None)
    return await _result(engine, execution_id, "cancel", changed)


@router.post(
    "/{execution_id}/retry",
    response_model=models.ControlResult,
    summary="Retry a failed execution from its failures",
    responses=RESPONSES,
)
async def retry_execution(engine: Engine, execution_id: ExecutionIdPath) -> models.ControlResult:
    """Failed nodes and what is downstream of them run again, on the pinned version;
    results that succeeded are kept."""
    await engine.retry_execution(execution_id)
    return await _result(engine, execution_id, "retry", True)


@router.post(
    "/{execution_id}/replay",
    response_model=models.Replayed,
    status_code=201,
    summary="Replay an execution",
    responses={404: RESPONSES[404]},
)
async def replay_execution(engine: Engine, execution_id: ExecutionIdPath) -> models.Replayed:
    """A new execution of the same workflow version with the same input."""
    new_id = await engine.replay_execution(execution_id)
    return models.Replayed(execution_id=new_id, replayed_from=execution_id)


__all__ = ["router"]
