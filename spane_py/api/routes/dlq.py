"""The dead-letter queue: nodes that failed for good, listed and retried."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from spane_py.api import models, responses
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody

router = APIRouter(prefix="/dlq", tags=["dead-letter queue"])

RESPONSES: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorBody, "description": "No such item"},
    409: {"model": ErrorBody, "description": "Retried already, or its execution refuses"},
}


@router.get("", response_model=models.DlqPage, summary="List dead-letter items")
async def list_dlq_items(
    engine: Engine,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
    include_retried: bool = False,
) -> models.DlqPage:
    """Newest first."""
    items = await engine.get_dlq_items(limit, offset, include_retried=include_retried)
    total = await engine.store.get_dlq_count(include_retried=include_retried)
    return models.DlqPage(items=[responses.dlq_item(i) for i in items], total=total)


@router.post(
    "/{dlq_id}/retry",
    response_model=models.DlqItem,
    summary="Retry a dead-letter item",
    responses=RESPONSES,
)
async def retry_dlq_item(
    engine: Engine, dlq_id: Annotated[int, Path(ge=1, le=2**63 - 1)]
) -> models.DlqItem:
    """Run the item's node again (and what follows it); its execution goes back to
    running."""
    await engine.retry_dlq_item(dlq_id)
    item = await engine.store.get_dlq_item(dlq_id)
    assert item is not None
    return responses.dlq_item(item)


@router.delete("", response_model=models.Purged, summary="Purge dead-letter items")
async def purge_dlq(
    engine: Engine,
    older_than: Annotated[
        AwareDatetime | None, Query(description="Only items that failed before (ISO 8601)")
    ] = None,
) -> models.Purged:
    """Delete items (all of them, or those that failed before ``older_than``)."""
    return models.Purged(purged=await engine.purge_dlq(older_than=older_than))


__all__ = ["router"]
