"""Triggers: list schedules (with their next fire time), pause and resume one; list the
webhook triggers (without their secrets)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from spane_py.api import ops_models
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody
from spane_py.errors import ScheduleNotFoundError

router = APIRouter(tags=["triggers"])

ScheduleIdPath = Annotated[str, Path(min_length=1, max_length=200)]
WorkflowFilter = Annotated[
    str | None, Query(max_length=128, description="Only this workflow's triggers")
]
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No schedule has this id"}
}


@router.get("/schedules", response_model=list[ops_models.Schedule], summary="List schedules")
async def list_schedules(
    engine: Engine, workflow_id: WorkflowFilter = None
) -> list[ops_models.Schedule]:
    """The schedule triggers of registered workflows, by id, each with its next tick."""
    return [ops_models.schedule(s) for s in await engine.list_schedules(workflow_id)]


async def _set_paused(
    engine: Engine, schedule_id: str, action: Literal["pause", "resume"]
) -> ops_models.ScheduleAction:
    if action == "pause":
        changed = await engine.pause_schedule(schedule_id)
    else:
        changed = await engine.resume_schedule(schedule_id)
    for info in await engine.list_schedules():
        if info.schedule_id == schedule_id:
            return ops_models.ScheduleAction(
                schedule_id=schedule_id,
                action=action,
                changed=changed,
                schedule=ops_models.schedule(info),
            )
    # Removed between the two calls (its workflow registered again without it).
    raise ScheduleNotFoundError(f"schedule {schedule_id!r} does not exist")


@router.post(
    "/schedules/{schedule_id}/pause",
    response_model=ops_models.ScheduleAction,
    summary="Pause a schedule",
    responses=NOT_FOUND,
)
async def pause_schedule(engine: Engine, schedule_id: ScheduleIdPath) -> ops_models.ScheduleAction:
    """Stop firing until resumed (registering the workflow again keeps it paused);
    ``changed`` is false when it was paused already."""
    return await _set_paused(engine, schedule_id, "pause")


@router.post(
    "/schedules/{schedule_id}/resume",
    response_model=ops_models.ScheduleAction,
    summary="Resume a schedule",
    responses=NOT_FOUND,
)
async def resume_schedule(engine: Engine, schedule_id: ScheduleIdPath) -> ops_models.ScheduleAction:
    """Fire again from the next tick; ticks that passed while it was paused are not caught
    up."""
    return await _set_paused(engine, schedule_id, "resume")


@router.get(
    "/webhook-triggers",
    response_model=list[ops_models.WebhookTrigger],
    summary="List webhook triggers",
)
async def list_webhook_triggers(
    engine: Engine, workflow_id: WorkflowFilter = None
) -> list[ops_models.WebhookTrigger]:
    """Which method and path start which workflow, by path and method; ``signed`` says
    whether requests need a signature (the secret itself is never shown)."""
    return [ops_models.webhook_trigger(w) for w in await engine.list_webhooks(workflow_id)]


__all__ = ["router"]
