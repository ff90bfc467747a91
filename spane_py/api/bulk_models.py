"""Bodies of the bulk routes beside ``models.py``: retrying many dead letters at once."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, Field

from spane_py.api.models import StrictModel

DlqId = Annotated[int, Field(ge=1, le=2**63 - 1)]


class DlqBulkRetryRequest(StrictModel):
    dlq_ids: list[DlqId] = Field(min_length=1, max_length=1000)


class DlqBulkRetryResult(BaseModel):
    retried: list[int] = Field(description="Items whose node runs again, in the order given")
    errors: dict[str, str] = Field(
        description="Item id -> why it was not retried (unknown, retried already, ...)"
    )


__all__ = ["DlqBulkRetryRequest", "DlqBulkRetryResult"]
