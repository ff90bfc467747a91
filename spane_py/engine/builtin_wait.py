"""The ``wait`` node: waits for a person or a system to resume it with a token
(``engine.resume``), until its timeout if it has one."""

from __future__ import annotations

import secrets
from datetime import timedelta
from typing import Any, ClassVar

from spane_py import _json
from spane_py.definitions.builtin_configs import WAIT, WaitConfig
from spane_py.engine import planner
from spane_py.engine.attempt import Attempt
from spane_py.engine.builtin_base import Services, Step, WakeAt, suspend
from spane_py.records import ResumeTokenRecord
from spane_py.state import NodeStatus


class WaitNode:
    name: ClassVar[str] = WAIT
    waits_for: ClassVar[str] = "event"

    def __init__(self, services: Services) -> None:
        self.services = services

    async def begin(self, attempt: Attempt) -> Step:
        config = WaitConfig.model_validate(attempt.node.config)
        ctx = attempt.ctx
        now = self.services.clock.now()
        timeout = config.timeout_s
        wake_at = now + timedelta(seconds=timeout) if timeout is not None else None
        expires = wake_at or now + timedelta(seconds=config.token_ttl_seconds)
        token = secrets.token_urlsafe(32)
        await self.services.store.save_token(
            ResumeTokenRecord(
                token=token,
                execution_id=ctx.execution_id,
                node_id=ctx.node_id,
                generation=attempt.job.generation,
                created_at=now,
                expires_at=expires,
            )
        )
        if not await suspend(
            self.services, attempt, wake_at=wake_at, wait={"kind": "event", "token": token}
        ):
            await self.services.store.revoke_token(token, self.services.clock.now())
            return None
        return WakeAt(wake_at) if wake_at is not None else None

    async def wake(self, attempt: Attempt, info: dict[str, Any]) -> Step:
        wake_at = attempt.started.nodes[attempt.node.id].wake_at
        if wake_at is None:
            return None  # only engine.resume(token) ends this wait
        if wake_at > self.services.clock.now():
            return WakeAt(wake_at)
        config = WaitConfig.model_validate(attempt.node.config)
        if config.on_timeout == "continue":
            return planner.NodeOutcome(
                NodeStatus.SUCCEEDED, output=_json.dumps(config.default_output)
            )
        return planner.NodeOutcome(
            NodeStatus.FAILED,
            error=f"node {attempt.node.id!r} was not resumed within {config.timeout_s:g} s",
        )
