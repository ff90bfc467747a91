"""Every node sees the run's input (``ctx.initial_data``), on both stores: nodes far from
the entry, nodes woken after a wait, ``map`` items and plain ``def`` nodes."""

from __future__ import annotations

from typing import Any

from spane_py import ExecutionContext, ExecutionStatus, NodeRegistry
from tests.integration._support import node, workflow
from tests.integration.conftest import EngineFactory, StoreFactory


async def test_every_node_sees_the_executions_input(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    seen: dict[str, Any] = {}
    registry = NodeRegistry()

    async def step(ctx: ExecutionContext) -> Any:
        seen[ctx.node_id] = ctx.initial_data
        return {"from": ctx.node_id}  # not the input: later nodes cannot get it from parents

    def blocking(ctx: ExecutionContext) -> Any:
        seen[ctx.node_id] = ctx.initial_data
        return [1, 2]

    async def item(ctx: ExecutionContext) -> Any:
        seen[f"item-{ctx.input_data}"] = ctx.initial_data
        return ctx.input_data

    registry.register("step", step)
    registry.register("blocking", blocking)
    registry.register("item", item)
    engine = await make_engine(registry, new_store())
    await engine.register_workflow(
        workflow(
            "far",
            node("a", "step"),
            node("b", "blocking", "a"),
            node("pause", "delay", "b", config={"duration": 1}),
            node("each", "map", "pause", config={"nodeType": "item"}),
            node("z", "step", "each"),
        )
    )
    await engine.start_workers()
    run_input = {"order": 42, "items": ["x", "y"], "empty": None}
    state = await engine.run_workflow("far", run_input, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert seen == {
        "a": run_input,
        "b": run_input,
        "item-1": run_input,
        "item-2": run_input,
        "z": run_input,
    }
