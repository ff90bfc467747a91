"""``WorkflowEngine``'s schedule and webhook methods (``spane_py/triggers`` does the work)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spane_py._text import check_argument
from spane_py.engine.core import EngineCore
from spane_py.records import WebhookRecord
from spane_py.triggers import scheduler as schedules
from spane_py.triggers import webhooks
from spane_py.triggers.replay import ReplayMemory
from spane_py.triggers.scheduler import ScheduleInfo


class TriggerMethods(EngineCore):
    async def list_schedules(self, workflow_id: str | None = None) -> list[ScheduleInfo]:
        """Schedules of registered workflows (their schedule triggers), by id, each with
        its next tick. Every worker process fires them: see ``spane_py/triggers``."""
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await schedules.list_schedules(self.store, workflow_id)

    async def pause_schedule(self, schedule_id: str) -> bool:
        """Stop firing until ``resume_schedule`` (registering the workflow again keeps it
        paused). False when it was paused already; ``ScheduleNotFoundError`` if unknown."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        return await schedules.set_paused(self.store, schedule_id, True)

    async def resume_schedule(self, schedule_id: str) -> bool:
        """Fire again from the next tick; ticks that passed while paused are not caught up."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        changed = await schedules.set_paused(self.store, schedule_id, False)
        self._triggers_changed.set()
        return changed

    async def remove_schedule(self, schedule_id: str) -> None:
        """Delete a schedule. Its trigger stays in the definition, so registering the
        workflow again brings it back: pause it, or drop the trigger, to stop it for good."""
        check_argument("schedule_id", schedule_id)
        await self.store.start()
        await schedules.remove(self.store, schedule_id)

    async def list_webhooks(self, workflow_id: str | None = None) -> list[WebhookRecord]:
        """Webhook bindings (path, method, workflow), by path and method."""
        check_argument("workflow_id", workflow_id)
        await self.store.start()
        return await self.store.list_webhooks(workflow_id)

    async def trigger_webhook(
        self,
        path: str,
        method: str = "POST",
        body: Any = None,
        headers: Mapping[str, str] | None = None,
    ) -> list[str]:
        """Start the workflow bound to ``method /path`` with the JSON ``body`` (the bytes or
        text received, an async iterable of its chunks, or an already parsed value) as its
        initial data; the execution ids. Checks and errors (404, 401, 413, 400), signatures
        and replays: ``spane_py/triggers/webhooks.py``.
        """
        await self.start()
        return await webhooks.trigger(
            self.store,
            self._start_triggered,
            self._active_definition,
            path,
            method,
            body,
            headers,
            self.limits,
            replay=ReplayMemory(self.queue.redis, self.key_prefix),
            clock=self.webhook_clock,
            tolerance_s=self.webhook_tolerance_seconds,
        )
