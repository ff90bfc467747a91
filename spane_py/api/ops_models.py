"""Bodies of the operator routes — schedules, webhook triggers, approvals — and the
converters from engine records to them.

Apart from ``models.py`` and ``responses.py`` only to keep those two files small: the same
rules hold (snake_case, times with a zone, no secret ever in a response).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from spane_py.records import WebhookRecord
from spane_py.state import ExecutionStatus
from spane_py.triggers.scheduler import ScheduleInfo


# Schedules -----------------------------------------------------------------------------
class Schedule(BaseModel):
    schedule_id: str
    workflow_id: str
    cron: str = Field(description="six fields, seconds first")
    timezone: str
    missed: str = Field(description="what happens to ticks missed: skip or run_once")
    paused: bool
    last_tick: datetime | None = Field(description="the latest tick fired or passed by")
    created_at: datetime
    next_tick: datetime | None = Field(description="the next fire time; null while paused")


class ScheduleAction(BaseModel):
    schedule_id: str
    action: Literal["pause", "resume"]
    changed: bool = Field(description="False when it already was so")
    schedule: Schedule


# Webhook triggers ----------------------------------------------------------------------
class WebhookTrigger(BaseModel):
    workflow_id: str
    method: str
    path: str
    url: str = Field(description="the route that triggers it, on this server")
    signed: bool = Field(description="requests must carry a signature (the secret is not shown)")
    created_at: datetime | None = None


# Approvals -----------------------------------------------------------------------------
class Approval(BaseModel):
    """A ``wait`` node waiting for its resume token, with its execution and its token."""

    token: str = Field(description="the resume token: POST /api/resume {token, data}")
    token_created_at: datetime
    token_expires_at: datetime | None = None
    execution_id: str
    workflow_id: str
    workflow_version: int
    execution_status: ExecutionStatus
    execution_created_at: datetime
    node_id: str
    node_name: str | None = None
    node_description: str | None = None
    waiting_since: datetime | None = Field(None, description="when the node began to wait")
    times_out_at: datetime | None = Field(
        None, description="when the wait ends without its token (null: no timeout)"
    )
    on_timeout: Literal["fail", "continue"] | None = Field(
        None, description="what the timeout does: fail the node, or continue with default_output"
    )
    default_output: Any = None
    input: Any = Field(None, description="the data the node got: what is to be approved")


def schedule(info: ScheduleInfo) -> Schedule:
    return Schedule(
        schedule_id=info.schedule_id,
        workflow_id=info.workflow_id,
        cron=info.cron,
        timezone=info.timezone,
        missed=info.missed,
        paused=info.paused,
        last_tick=info.last_tick,
        created_at=info.created_at,
        next_tick=info.next_tick,
    )


def webhook_trigger(record: WebhookRecord) -> WebhookTrigger:
    path = record.path.strip("/")
    return WebhookTrigger(
        workflow_id=record.workflow_id,
        method=record.method,
        path=record.path,
        url=f"/api/webhooks/{path}",
        signed=bool(record.secret),
        created_at=record.created_at,
    )


__all__ = [
    "Approval",
    "Schedule",
    "ScheduleAction",
    "WebhookTrigger",
    "schedule",
    "webhook_trigger",
]
