"""Executions: list and search them, read one, read its trace and its artifacts."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal
from urllib.parse import quote

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse, Response
from pydantic import AwareDatetime, StringConstraints

from spane_py.api import models, responses
from spane_py.api.deps import Engine
from spane_py.api.errors import ApiError, ErrorBody
from spane_py.errors import ExecutionNotFoundError, SerializationError, WorkflowNotFoundError
from spane_py.execution_search import FieldMatch
from spane_py.state import ArtifactInfo, ExecutionState, ExecutionStatus

router = APIRouter(prefix="/executions", tags=["executions"])

ExecutionIdPath = Annotated[str, Path(min_length=1, max_length=100)]
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody}}
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# An execution's status, or ``waiting``: running, with a node waiting (a timer, a person,
# a sub-workflow); executions whose nodes wait are ``running``.
StatusFilter = Literal["queued", "running", "paused", "completed", "failed", "cancelled", "waiting"]
WHERE_DESCRIPTION = (
    "An equality on a JSON path of the metadata or the input, repeatable (all must hold): "
    "metadata.tenant=acme, input.customer_id=7; the value is JSON when it parses as JSON "
    '(7, true, "7", ["a"]), else text; an object or array value is contained, as jsonb @>'
)


@router.get(
    "",
    response_model=models.ExecutionPage,
    summary="List and search executions",
    responses={400: {"model": ErrorBody}, 422: {"model": ErrorBody}},
)
async def list_executions(
    engine: Engine,
    workflow_id: Annotated[str | None, Query(max_length=128)] = None,
    status: Annotated[
        StatusFilter | None,
        Query(description="An execution status, or waiting: running with a node waiting"),
    ] = None,
    since: Annotated[
        AwareDatetime | None, Query(description="Created at or after (ISO 8601, with zone)")
    ] = None,
    until: Annotated[
        AwareDatetime | None, Query(description="Created before (ISO 8601, with zone)")
    ] = None,
    id_prefix: Annotated[
        str | None,
        Query(max_length=36, description="The start of the execution id (either case)"),
    ] = None,
    where: Annotated[
        list[Annotated[str, StringConstraints(max_length=500)]] | None,
        Query(max_length=10, description=WHERE_DESCRIPTION),
    ] = None,
    parent_id: Annotated[
        list[Annotated[str, StringConstraints(max_length=100)]] | None,
        Query(max_length=100, description="Only children of these executions (repeatable)"),
    ] = None,
    roots_only: Annotated[
        bool, Query(description="Only executions that are not a sub-workflow's")
    ] = False,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="next_cursor of the previous page")] = None,
) -> models.ExecutionPage:
    """Newest first, filtered by every parameter given; page with ``cursor`` (keyset: the
    last execution id of the page before, so a deep page costs what the first does)."""
    if cursor is not None and not _UUID.match(cursor):
        raise ApiError(
            400,
            "INVALID_CURSOR",
            f"cursor {cursor!r} is not one this API returned (pass a page's next_cursor)",
        )
    if since is not None and until is not None and since >= until:
        raise ApiError(400, "INVALID_RANGE", "since must be earlier than until")
    matches = []
    for text in where or ():
        try:
            matches.append(FieldMatch.parse(text))
        except (ValueError, SerializationError) as exc:
            raise ApiError(422, "INVALID_REQUEST", f"query parameter 'where': {exc}") from exc
    page = await engine.list_executions(
        workflow_id=workflow_id,
        status=None if status in (None, "waiting") else ExecutionStatus(status),
        waiting=status == "waiting",
        id_prefix=id_prefix,
        since=since,
        until=until,
        where=matches,
        parent_ids=parent_id,
        roots_only=roots_only,
        limit=limit,
        cursor=cursor,
    )
    return models.ExecutionPage(
        items=[responses.execution_summary(r) for r in page.items], next_cursor=page.next_cursor
    )


@router.get(
    "/{execution_id}",
    response_model=ExecutionState,
    summary="Get an execution",
    responses=NOT_FOUND,
)
async def get_execution(
    engine: Engine, execution_id: ExecutionIdPath
) -> ExecutionState | JSONResponse:
    """The execution's status and the result of each node so far. One that retention
    archived and deleted (``SPANE_ARCHIVE_DIR``) comes back as archived, with
    ``"archived": true`` (docs/retention.md)."""
    try:
        return await engine.get_execution(execution_id)
    except ExecutionNotFoundError:
        archived = await engine.get_archived_execution(execution_id)
        if archived is None:
            raise
        return JSONResponse({"archived": True, **archived})


@router.get(
    "/{execution_id}/trace",
    response_model=models.Trace,
    summary="Get an execution's trace",
    responses=NOT_FOUND,
)
async def get_trace(engine: Engine, execution_id: ExecutionIdPath) -> models.Trace:
    """The execution, one span per node attempt, its log lines, its child executions, and
    its workflow version's DAG with each node's status and input (what the dashboard
    draws)."""
    trace = await engine.get_trace(execution_id)
    snapshot = await engine.store.get_snapshot(execution_id)
    if snapshot is None:  # deleted (evicted) between the two reads
        raise ExecutionNotFoundError(
            f"execution {execution_id!r} does not exist", execution_id=execution_id
        )
    graph = None
    try:
        compiled = await engine.cache.get(
            snapshot.execution.workflow_id, snapshot.execution.workflow_version
        )
        graph = responses.execution_graph(compiled, snapshot)
    except WorkflowNotFoundError:
        pass  # the in-memory store may have dropped the version: the trace stands alone
    return models.Trace(
        execution=trace.execution,
        spans=trace.spans,
        logs=trace.logs,
        children=trace.children,
        artifacts=trace.artifacts,
        graph=graph,
    )


@router.get(
    "/{execution_id}/artifacts",
    response_model=list[ArtifactInfo],
    summary="List an execution's artifacts",
    responses=NOT_FOUND,
)
async def list_artifacts(engine: Engine, execution_id: ExecutionIdPath) -> list[ArtifactInfo]:
    """By name: the node that put each, its content type, size and time (no bytes)."""
    return await engine.list_artifacts(execution_id)


@router.get(
    "/{execution_id}/artifacts/{name:path}",
    summary="Get an artifact's bytes",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {}},
            "description": "The bytes, with the content type they were put with",
        },
        **NOT_FOUND,
    },
)
async def get_artifact(
    engine: Engine,
    execution_id: ExecutionIdPath,
    name: Annotated[str, Path(min_length=1, max_length=255)],
) -> Response:
    """The artifact's bytes (a JSON one: its JSON text), as a download: a browser saves it
    rather than rendering it (``Content-Disposition: attachment``, ``nosniff``)."""
    artifact = await engine.get_artifact(execution_id, name)
    return Response(
        content=artifact.data,
        media_type=artifact.content_type,
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(name, safe='')}",
            "X-Content-Type-Options": "nosniff",
        },
    )


__all__ = ["router"]
