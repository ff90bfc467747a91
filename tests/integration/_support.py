"""Helpers for the integration tests: definition builders, a call recorder, waiting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine


def node(node_id: str, node_type: str, *inputs: str, **extra: Any) -> dict[str, Any]:
    """A node in the snake_case dict shape; ``inputs`` are its parents."""
    return {"id": node_id, "type": node_type, "inputs": list(inputs), **extra}


def workflow(workflow_id: str, *nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": workflow_id, "name": workflow_id, "nodes": list(nodes), **extra}


@dataclass
class Call:
    node_id: str
    execution_id: str
    input_data: Any
    attempt: int
    at: float  # time.monotonic() when the executor was entered


@dataclass
class Recorder:
    """Records every executor call, in order, across node types."""

    calls: list[Call] = field(default_factory=list)

    def record(self, ctx: ExecutionContext) -> None:
        self.calls.append(
            Call(ctx.node_id, ctx.execution_id, ctx.input_data, ctx.attempt, time.monotonic())
        )

    def of(self, node_id: str, execution_id: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.node_id == node_id and (execution_id is None or c.execution_id == execution_id)
        ]

    def nodes(self, execution_id: str | None = None) -> list[str]:
        return [c.node_id for c in self.calls if execution_id in (None, c.execution_id)]

    def register(
        self,
        registry: NodeRegistry,
        node_type: str,
        body: Callable[[ExecutionContext], Awaitable[Any]],
    ) -> None:
        """Register ``body`` under ``node_type``, recording each call before running it."""

        async def execute(ctx: ExecutionContext) -> Any:
            self.record(ctx)
            return await body(ctx)

        registry.register(node_type, execute)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def queue_is_empty(engine: WorkflowEngine) -> bool:
    stats = await engine.get_queue_stats()
    return stats.queued == 0 and stats.scheduled == 0 and stats.running == 0


async def wait_queue_empty(engine: WorkflowEngine, timeout: float = 5.0) -> None:
    await wait_until(lambda: queue_is_empty(engine), timeout=timeout, what="an empty queue")


async def assert_nothing_created(engine: WorkflowEngine) -> None:
    """No execution record was written and no job was sent."""
    assert await engine.store.get_execution_count() == 0
    stats = await engine.get_queue_stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 0)
