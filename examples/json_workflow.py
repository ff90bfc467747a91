"""A SPANE-shaped JSON definition, its node types served by executors you register.

python examples/json_workflow.py
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from spane_py import ExecutionContext, ExecutionResult, NodeRegistry, WorkflowEngine, success_result

DEFINITION = json.loads("""
{
  "id": "price-check",
  "name": "Price check",
  "entryNodeId": "quote",
  "nodes": [
    {"id": "quote", "type": "quote", "config": {"currency": "EUR"}, "outputs": ["check"],
     "retryPolicy": {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 200}}},
    {"id": "check", "type": "threshold", "config": {"max": 100},
     "inputs": ["quote"], "outputs": ["buy", "wait"]},
    {"id": "buy", "type": "say", "config": {"text": "buy"}, "inputs": ["check"]},
    {"id": "wait", "type": "say", "config": {"text": "wait"}, "inputs": ["check"]}
  ]
}
""")


class Quote:
    """An executor object: ``async execute(ctx)``. Returning a plain value means success."""

    async def execute(self, ctx: ExecutionContext) -> dict[str, Any]:
        return {"price": ctx.input_data["price"], "currency": ctx.node_config["currency"]}


async def threshold(ctx: ExecutionContext) -> ExecutionResult:
    """An executor function. ``next_nodes`` chooses among the node's outputs."""
    too_dear = ctx.input_data["price"] > ctx.node_config["max"]
    return success_result(ctx.input_data, next_nodes=["wait" if too_dear else "buy"])


async def say(ctx: ExecutionContext) -> str:
    quote = ctx.input_data
    return f"{ctx.node_config['text']} at {quote['price']} {quote['currency']}"


async def main() -> None:
    registry = NodeRegistry()
    registry.register("quote", Quote())
    registry.register("threshold", threshold)
    registry.register("say", say)
    async with WorkflowEngine(registry) as engine:
        v1 = await engine.register_workflow(DEFINITION)
        await engine.start_workers()
        for price in (80, 120):
            state = await engine.run_workflow("price-check", {"price": price})
            ran = [n for n, r in state.node_results.items() if r.status == "succeeded"]
            print(f"v{state.workflow_version} price {price}: {state.status}, ran {ran}")
            print(f"  {state.node_results[ran[-1]].data}")

        # Registering a changed definition makes a new version; new executions use it,
        # running ones stay on theirs. Registering it unchanged again is a no-op.
        DEFINITION["nodes"][1]["config"]["max"] = 150
        v2 = await engine.register_workflow(DEFINITION, change_notes="raise the limit")
        again = await engine.register_workflow(DEFINITION)
        print(f"versions: {v1.version} -> {v2.version} (again: {again.version})")
        state = await engine.run_workflow("price-check", {"price": 120})
        print(f"v{state.workflow_version} price 120: {state.node_results['buy'].data}")


if __name__ == "__main__":
    asyncio.run(main())
