"""Workflows: list, register, read versions, start executions."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Path, Query, Response

from spane_py.api import models, responses
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody
from spane_py.errors import WorkflowNotFoundError

router = APIRouter(prefix="/workflows", tags=["workflows"])

WorkflowIdPath = Annotated[str, Path(min_length=1, max_length=128)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
INVALID: dict[int | str, dict[str, Any]] = {422: {"model": ErrorBody}}


@router.get("", response_model=list[models.WorkflowSummary], summary="List workflows")
async def list_workflows(
    engine: Engine,
    active_only: bool = True,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[models.WorkflowSummary]:
    """Registered workflows, the latest version of each, ordered by id."""
    records = await engine.list_workflows(active_only=active_only, limit=limit, offset=offset)
    return [responses.workflow_summary(r) for r in records]


@router.post(
    "",
    response_model=models.Registered,
    status_code=201,
    summary="Register a workflow",
    responses={200: {"model": models.Registered, "description": "Unchanged"}, **INVALID},
)
async def register_workflow(
    engine: Engine,
    response: Response,
    definition: Annotated[
        dict[str, Any],
        Body(
            description="A workflow definition, SPANE JSON (camelCase) or snake_case",
            examples=[
                {
                    "id": "hello",
                    "entryNodeId": "a",
                    "nodes": [
                        {"id": "a", "type": "my-type", "outputs": ["b"]},
                        {"id": "b", "type": "my-type"},
                    ],
                }
            ],
        ),
    ],
    change_notes: Annotated[str | None, Query(max_length=1000)] = None,
) -> models.Registered:
    """Validate and save a definition. A changed definition becomes a new version (201);
    the same content again changes nothing (200). Every node type must have an executor
    registered in the server's registry."""
    saved = await engine.register_workflow(definition, change_notes=change_notes)
    if not saved.created:
        response.status_code = 200
    return models.Registered(
        workflow_id=saved.workflow_id,
        version=saved.version,
        content_hash=saved.content_hash,
        created=saved.created,
        warnings=list(saved.warnings),
    )


@router.get(
    "/{workflow_id}",
    response_model=models.WorkflowVersion,
    summary="Get a workflow's latest version",
    responses=NOT_FOUND,
)
async def get_workflow(engine: Engine, workflow_id: WorkflowIdPath) -> models.WorkflowVersion:
    return await _version(engine, workflow_id, None)


@router.get(
    "/{workflow_id}/versions",
    response_model=list[models.WorkflowSummary],
    summary="List a workflow's versions",
    responses=NOT_FOUND,
)
async def list_workflow_versions(
    engine: Engine, workflow_id: WorkflowIdPath
) -> list[models.WorkflowSummary]:
    """Every stored version, oldest first."""
    records = await engine.list_workflow_versions(workflow_id)
    if not records:
        raise _not_found(workflow_id, None)
    return [responses.workflow_summary(r) for r in records]


@router.get(
    "/{workflow_id}/versions/{version}",
    response_model=models.WorkflowVersion,
    summary="Get one version of a workflow",
    responses=NOT_FOUND,
)
async def get_workflow_version(
    engine: Engine, workflow_id: WorkflowIdPath, version: Annotated[int, Path(ge=1)]
) -> models.WorkflowVersion:
    return await _version(engine, workflow_id, version)


async def _version(engine: Engine, workflow_id: str, version: int | None) -> models.WorkflowVersion:
    await engine.store.start()
    record = await engine.store.get_workflow(workflow_id, version)
    if record is None:
        raise _not_found(workflow_id, version)
    return responses.workflow_version(record)


def _not_found(workflow_id: str, version: int | None) -> WorkflowNotFoundError:
    what = f"version {version} of workflow" if version is not None else "workflow"
    return WorkflowNotFoundError(
        f"{what} {workflow_id!r} is not registered", workflow_id=workflow_id
    )


@router.post(
    "/{workflow_id}/executions",
    response_model=models.Enqueued,
    status_code=201,
    summary="Start an execution",
    responses={**NOT_FOUND, **INVALID},
)
async def enqueue_execution(
    engine: Engine,
    workflow_id: WorkflowIdPath,
    body: Annotated[models.EnqueueRequest | None, Body()] = None,
) -> models.Enqueued:
    """Start an execution of the workflow's latest version, or of ``version`` (the body
    may be left out: no input). An ``idempotency_key`` seen for this workflow recently
    returns the first execution's id and starts nothing."""
    body = body or models.EnqueueRequest()
    execution_id = await engine.enqueue_workflow(
        workflow_id,
        body.input,
        priority=body.priority,
        delay=body.delay_seconds,
        idempotency_key=body.idempotency_key,
        metadata=body.metadata,
        version=body.version,
    )
    return models.Enqueued(execution_id=execution_id, workflow_id=workflow_id)


@router.post(
    "/{workflow_id}/executions/bulk",
    response_model=models.BulkEnqueued,
    status_code=201,
    summary="Start many executions",
    responses={**NOT_FOUND, **INVALID},
)
async def enqueue_executions(
    engine: Engine, workflow_id: WorkflowIdPath, body: models.BulkEnqueueRequest
) -> models.BulkEnqueued:
    """One execution per item of ``inputs``, written together; ids in the same order."""
    ids = await engine.enqueue_bulk(
        workflow_id,
        body.inputs,
        priority=body.priority,
        delay=body.delay_seconds,
        metadata=body.metadata,
    )
    return models.BulkEnqueued(workflow_id=workflow_id, execution_ids=ids)


__all__ = ["router"]
