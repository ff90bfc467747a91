"""Waits, delays, sub-workflows and repairs: the built-in node types and the control actions.

python examples/control.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine

ORDER = {
    "id": "order",
    "nodes": [
        {"id": "price", "type": "price", "outputs": ["approve"]},
        # Suspends until engine.resume(token, data); its data is what the approver sends.
        {"id": "approve", "type": "wait", "config": {"timeoutSeconds": 3600},
         "outputs": ["cool-off"]},
        # A durable timer: no worker sleeps through it, and it survives restarts.
        {"id": "cool-off", "type": "delay", "config": {"duration": 200}, "outputs": ["ship"]},
        # Runs the "shipping" workflow as a child execution and waits for its result.
        {"id": "ship", "type": "sub-workflow",
         "config": {"workflowId": "shipping", "inputMapping": {"sku": "sku"}}},
    ],
}  # fmt: skip

SHIPPING = {
    "id": "shipping",
    "nodes": [
        {"id": "label", "type": "label", "outputs": ["book"]},
        {"id": "book", "type": "carrier"},
    ],
}

carrier_up = False


async def price(ctx: ExecutionContext) -> dict[str, Any]:
    return {**ctx.input_data, "total": ctx.input_data["qty"] * 12}


async def label(ctx: ExecutionContext) -> str:
    return f"label for {ctx.input_data['sku']}"


async def carrier(ctx: ExecutionContext) -> str:
    if not carrier_up:
        raise ConnectionError("carrier API unreachable")
    return f"booked: {ctx.input_data}"


async def main() -> None:
    global carrier_up
    registry = NodeRegistry()
    registry.register("price", price)
    registry.register("label", label)
    registry.register("carrier", carrier)
    async with WorkflowEngine(registry, workflows=[SHIPPING, ORDER]) as engine:
        await engine.start_workers()
        execution_id = await engine.enqueue_workflow("order", {"sku": "A-1", "qty": 2})

        for _ in range(200):  # the wait node issues its token once the price is computed
            tokens = await engine.list_resume_tokens(execution_id)
            if tokens:
                break
            await asyncio.sleep(0.05)
        print(f"waiting at {tokens[0].node_id!r}")
        await engine.resume(tokens[0].token, {"sku": "A-1", "approved_by": "ana"})

        state = await engine.wait_for_execution(execution_id)
        print(f"{state.status}: {state.error}")

        carrier_up = True  # the outage is over: run the failed part again
        await engine.retry_execution(execution_id)
        state = await engine.wait_for_execution(execution_id)
        print(f"after retry: {state.status}, ship -> {state.node_results['ship'].data!r}")
        dead = await engine.get_dlq_items(include_retried=True)
        print(f"dead letters: {[(d.workflow_id, d.node_id) for d in dead]}")


if __name__ == "__main__":
    asyncio.run(main())
