"""The dead-letter queue: nodes that failed for good, listed and retried."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from pydantic import AwareDatetime

from spane_py.api import bulk_models, models, responses
from spane_py.api.deps import Engine
from spane_py.api.errors import ErrorBody
from spane_py.errors import ConfigurationError, QueueError, SpaneError, StatePersistenceError

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
    "/retry",
    response_model=bulk_models.DlqBulkRetryResult,
    summary="Retry many dead-letter items",
)
async def retry_dlq_items(
    engine: Engine, body: bulk_models.DlqBulkRetryRequest
) -> bulk_models.DlqBulkRetryResult:
    """Retry each item in turn (the dashboard's "retry all" of a group of errors); one that
    cannot be retried (unknown, retried already, its execution refusing) is listed under
    ``errors`` with the reason and does not stop the others."""
    retried: list[int] = []
    errors: dict[str, str] = {}
    for dlq_id in dict.fromkeys(body.dlq_ids):
        try:
            await engine.retry_dlq_item(dlq_id)
        except (StatePersistenceError, QueueError, ConfigurationError):
            raise  # the store or Redis failed: a 503, not a refusal
        except SpaneError as exc:
            errors[str(dlq_id)] = exc.message
        else:
            retried.append(dlq_id)
    return bulk_models.DlqBulkRetryResult(retried=retried, errors=errors)


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
