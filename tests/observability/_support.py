"""Helpers of the observability tests: small workflows and their node types."""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import ExecutionContext, NodeRegistry
from spane_py.observability.stream import EngineEvent, EventSubscription

RETRY_ONCE = {"max_attempts": 2, "backoff": {"type": "fixed", "delay": 10}}


def node(node_id: str, node_type: str, *inputs: str, **extra: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, "inputs": list(inputs), **extra}


def workflow(workflow_id: str, *nodes: dict[str, Any]) -> dict[str, Any]:
    return {"id": workflow_id, "name": workflow_id, "nodes": list(nodes)}


def register_types(registry: NodeRegistry) -> None:
    """``echo`` returns its input; ``boom`` always fails; ``flaky`` fails its first
    attempt; ``hold`` waits until cancelled."""

    async def echo(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    async def boom(ctx: ExecutionContext) -> Any:
        raise RuntimeError("boom")

    async def flaky(ctx: ExecutionContext) -> Any:
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return ctx.attempt

    async def hold(ctx: ExecutionContext) -> Any:
        await asyncio.sleep(30)

    registry.register("echo", echo)
    registry.register("boom", boom)
    registry.register("flaky", flaky)
    registry.register("hold", hold)


CHAIN = workflow("chain", node("a", "echo"), node("b", "echo", "a"))
FAILING = workflow("failing", node("a", "echo"), node("b", "boom", "a"))
FLAKY = workflow("flaky", node("f", "flaky", retry_policy=RETRY_ONCE))


async def collect_until_settled(
    sub: EventSubscription, execution_id: str, *, timeout: float = 10.0
) -> list[EngineEvent]:
    """The subscription's events up to the one that settles ``execution_id``."""
    seen: list[EngineEvent] = []

    async def read() -> None:
        async for event in sub:
            seen.append(event)
            if event.settles_execution and event.execution_id == execution_id:
                return

    await asyncio.wait_for(read(), timeout)
    return seen


def names(seen: list[EngineEvent]) -> list[tuple[str, str | None]]:
    return [(e.name, e.node_id) for e in seen]
