"""The in-memory store's schedules and webhook bindings (``TriggerStore``; a part of
``InMemoryExecutionStore``).

Each method reads and writes without awaiting, so it is atomic like the rest of the store.
Records are frozen dataclasses of immutable values: they are handed out as they are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime

from spane_py.errors import StatePersistenceError
from spane_py.records import ScheduleRecord, WebhookRecord
from spane_py.stores.memory_state import MemoryState


class MemoryTriggers(MemoryState):
    async def sync_triggers(
        self,
        workflow_id: str,
        schedules: Sequence[ScheduleRecord],
        webhooks: Sequence[WebhookRecord],
    ) -> list[WebhookRecord]:
        if workflow_id not in self._workflows:
            raise StatePersistenceError(
                f"workflow {workflow_id!r} is not saved: its triggers cannot be",
                workflow_id=workflow_id,
            )
        conflicts = [
            bound
            for w in webhooks
            if (bound := self._webhooks.get((w.path, w.method))) is not None
            and bound.workflow_id != workflow_id
            and self._is_active(bound.workflow_id)
        ]
        if conflicts:  # in the order PostgreSQL gives them: by path, then method
            return sorted(conflicts, key=lambda w: (w.path, w.method))
        now = datetime.now(UTC)
        keep = {s.schedule_id for s in schedules}
        for sid in [k for k, v in self._schedules.items() if v.workflow_id == workflow_id]:
            if sid not in keep:
                del self._schedules[sid]
        for s in schedules:
            old = self._schedules.get(s.schedule_id)
            self._schedules[s.schedule_id] = (
                replace(s, workflow_id=workflow_id)
                if old is None
                else replace(old, missed=s.missed, cron=s.cron, timezone=s.timezone)
            )
        bound_now = {(w.path, w.method) for w in webhooks}
        for key in [k for k, v in self._webhooks.items() if v.workflow_id == workflow_id]:
            if key not in bound_now:
                del self._webhooks[key]
        for w in webhooks:
            old_hook = self._webhooks.get((w.path, w.method))
            kept = old_hook is not None and old_hook.workflow_id == workflow_id
            self._webhooks[(w.path, w.method)] = replace(
                w,
                workflow_id=workflow_id,
                created_at=old_hook.created_at if kept and old_hook else now,
            )
        return []

    def _is_active(self, workflow_id: str) -> bool:
        versions = self._workflows.get(workflow_id)
        return versions is not None and bool(versions) and versions[-1].active

    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleRecord]:
        return [
            s
            for _, s in sorted(self._schedules.items())
            if workflow_id is None or s.workflow_id == workflow_id
        ]

    async def get_schedule(self, schedule_id: str) -> ScheduleRecord | None:
        return self._schedules.get(schedule_id)

    async def set_schedule_paused(
        self, schedule_id: str, paused: bool, *, skip_until: datetime | None = None
    ) -> bool:
        old = self._schedules.get(schedule_id)
        if old is None or old.paused == paused:
            return False
        last = old.last_tick
        if skip_until is not None and (last is None or skip_until > last):
            last = skip_until
        self._schedules[schedule_id] = replace(old, paused=paused, last_tick=last)
        return True

    async def advance_schedule(
        self, schedule_id: str, expected: datetime | None, last_tick: datetime
    ) -> bool:
        old = self._schedules.get(schedule_id)
        if old is None or old.last_tick != expected:
            return False
        self._schedules[schedule_id] = replace(old, last_tick=last_tick)
        return True

    async def delete_schedule(self, schedule_id: str) -> bool:
        return self._schedules.pop(schedule_id, None) is not None

    async def list_webhooks(self, workflow_id: str | None = None) -> list[WebhookRecord]:
        return [
            w
            for _, w in sorted(self._webhooks.items())
            if workflow_id is None or w.workflow_id == workflow_id
        ]

    async def get_webhook(self, path: str, method: str) -> WebhookRecord | None:
        return self._webhooks.get((path, method))
