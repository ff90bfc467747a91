"""The ``delay`` node: passes its input on after a while — a durable timer, no worker
sleeping (the node waits in the store, its job in Redis' scheduled set)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, ClassVar

from spane_py.definitions.builtin_configs import DELAY, DelayConfig
from spane_py.engine.attempt import Attempt
from spane_py.engine.builtin_base import Services, Step, WakeAt, passthrough, suspend


class DelayNode:
    name: ClassVar[str] = DELAY
    waits_for: ClassVar[str] = "timer"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def begin(self, attempt: Attempt) -> Step:
        config = DelayConfig.model_validate(attempt.node.config)
        if config.seconds <= 0:
            return passthrough(attempt.ctx)
        due = self.services.clock.now() + timedelta(seconds=config.seconds)
        if not await suspend(self.services, attempt, wake_at=due, wait={"kind": "timer"}):
            return None
        return WakeAt(due)

    async def wake(self, attempt: Attempt, info: dict[str, Any]) -> Step:
        rec = attempt.started.nodes[attempt.node.id]
        if rec.wake_at is not None and rec.wake_at > self.services.clock.now():
            return WakeAt(rec.wake_at)  # early (a resume, the sweeper): not yet
        return passthrough(attempt.ctx)
