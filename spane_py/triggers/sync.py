"""Registering a workflow's triggers: its schedules and webhook bindings in the store.

``register_workflow`` calls ``prepare`` before it saves the definition — a duplicate
trigger, or a webhook path and method that another active workflow holds, refuses the
registration with nothing saved — and ``TriggerSet.save`` after: one atomic store write
that makes the workflow's stored triggers exactly those of the definition. Two processes
registering two workflows with one path at the same moment both pass ``prepare``; the
store's write lets one of them bind it, and the other gets the same ``InvalidTriggerError``
(its definition is saved, its triggers are not).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

from spane_py.definitions.models import ScheduleTrigger, WebhookTrigger, WorkflowDefinition
from spane_py.errors import InvalidTriggerError
from spane_py.records import ScheduleRecord, WebhookRecord
from spane_py.stores.base import ExecutionStore


def schedule_id(workflow_id: str, trigger: ScheduleTrigger) -> str:
    """``<workflow_id>:<12 hex digits of the cron and timezone>``: the same trigger of the
    same workflow keeps its id (and its state) across versions."""
    digest = hashlib.sha256(f"{trigger.cron}\n{trigger.timezone}".encode()).hexdigest()
    return f"{workflow_id}:{digest[:12]}"


@dataclass(frozen=True, slots=True)
class TriggerSet:
    workflow_id: str
    schedules: tuple[ScheduleRecord, ...]
    webhooks: tuple[WebhookRecord, ...]

    async def save(self, store: ExecutionStore) -> None:
        conflicts = await store.sync_triggers(self.workflow_id, self.schedules, self.webhooks)
        if conflicts:
            raise _conflict(self.workflow_id, conflicts)


async def prepare(store: ExecutionStore, definition: WorkflowDefinition) -> TriggerSet:
    """The definition's triggers as store records, checked; nothing is written."""
    wid = definition.id
    now = datetime.now(UTC)
    schedules: dict[str, ScheduleRecord] = {}
    webhooks: dict[tuple[str, str], WebhookRecord] = {}
    for trigger in definition.triggers:
        if isinstance(trigger, ScheduleTrigger):
            sid = schedule_id(wid, trigger)
            if sid in schedules:
                raise InvalidTriggerError(
                    f"workflow {wid!r} has the schedule {trigger.cron!r} "
                    f"({trigger.timezone}) twice",
                    workflow_id=wid,
                )
            schedules[sid] = ScheduleRecord(
                sid, wid, trigger.cron, trigger.timezone, created_at=now, missed=trigger.missed
            )
        elif isinstance(trigger, WebhookTrigger):
            key = (trigger.path, trigger.method)
            if key in webhooks:
                raise InvalidTriggerError(
                    f"workflow {wid!r} has the webhook {trigger.method} /{trigger.path} twice",
                    workflow_id=wid,
                )
            webhooks[key] = WebhookRecord(trigger.path, trigger.method, wid, trigger.secret)
    taken = []
    for path, method in webhooks:
        bound = await store.get_webhook(path, method)
        if (
            bound is not None
            and bound.workflow_id != wid
            and await store.get_workflow_version(bound.workflow_id) is not None
        ):
            taken.append(bound)
    if taken:
        raise _conflict(wid, taken)
    return TriggerSet(wid, tuple(schedules.values()), tuple(webhooks.values()))


def _conflict(workflow_id: str, taken: list[WebhookRecord]) -> InvalidTriggerError:
    which = "; ".join(f"{w.method} /{w.path} belongs to {w.workflow_id!r}" for w in taken)
    return InvalidTriggerError(
        f"workflow {workflow_id!r} cannot be registered: webhook {which}. A path and method "
        "start one workflow: choose another path, or deactivate the other workflow",
        workflow_id=workflow_id,
        details={"conflicts": [[w.method, w.path, w.workflow_id] for w in taken]},
    )
