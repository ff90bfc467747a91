"""The run's input and output, on both stores: every node sees the execution's input
(``ctx.initial_data``) — nodes far from the entry, nodes woken after a wait, ``map`` items
and plain ``def`` nodes —, and a completed execution has the data of its final nodes as its
``output`` (a sub-workflow node hands it to its parent)."""

from __future__ import annotations

from typing import Any

from spane_py import (
    ExecutionContext,
    ExecutionResult,
    ExecutionStatus,
    NodeRegistry,
    NodeStatus,
    NonRetryableError,
)
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


# The execution's output ------------------------------------------------------------------


async def test_the_output_is_the_data_of_the_final_nodes(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()

    async def emit(ctx: ExecutionContext) -> Any:
        return {"node": ctx.node_id, "zero": 0, "no": False}

    async def route(ctx: ExecutionContext) -> Any:
        return ExecutionResult(True, {"routed": True}, next_nodes=["left"])

    async def boom(ctx: ExecutionContext) -> Any:
        raise NonRetryableError("no")

    registry.register("emit", emit)
    registry.register("route", route)
    registry.register("boom", boom)
    store = new_store()
    engine = await make_engine(registry, store)
    await engine.register_workflow(workflow("one", node("a", "emit"), node("z", "emit", "a")))
    await engine.register_workflow(
        workflow("several", node("a", "emit"), node("b", "emit", "a"), node("c", "emit", "a"))
    )
    await engine.register_workflow(
        workflow(
            "branch", node("r", "route"), node("left", "emit", "r"), node("right", "emit", "r")
        )
    )
    await engine.register_workflow(workflow("fails", node("a", "emit"), node("x", "boom", "a")))
    await engine.start_workers()

    one = await engine.run_workflow("one", None, timeout=20)
    assert one.output == {"node": "z", "zero": 0, "no": False}
    several = await engine.run_workflow("several", None, timeout=20)
    assert several.output == {
        "b": {"node": "b", "zero": 0, "no": False},
        "c": {"node": "c", "zero": 0, "no": False},
    }
    branch = await engine.run_workflow("branch", None, timeout=20)
    assert branch.node_results["right"].status is NodeStatus.SKIPPED
    assert branch.output == {"left": {"node": "left", "zero": 0, "no": False}}
    failed = await engine.run_workflow("fails", None, timeout=20)
    assert failed.status is ExecutionStatus.FAILED
    assert failed.output is None

    # Stored with the execution: another engine on the same store reads it back (PostgreSQL).
    again = await engine.get_execution(several.execution_id)
    assert again.output == several.output
    page = await engine.store.list_executions(workflow_id="one")
    assert [r.output is not None for r in page.items] == [True]


async def test_a_sub_workflow_hands_its_parent_the_childs_output(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()

    async def emit(ctx: ExecutionContext) -> Any:
        return {"from": ctx.node_id, "input": ctx.input_data}

    registry.register("emit", emit)
    engine = await make_engine(registry, new_store())
    await engine.register_workflow(
        workflow("child", node("a", "emit"), node("b", "emit", "a"), node("c", "emit", "a"))
    )
    await engine.register_workflow(
        workflow("parent", node("call", "sub-workflow", config={"workflowId": "child"}))
    )
    await engine.start_workers()
    state = await engine.run_workflow("parent", {"n": 1}, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED, state.error
    (child,) = await engine.store.get_child_executions(state.execution_id)
    child_state = await engine.get_execution(child.execution_id)
    assert child_state.output is not None
    assert set(child_state.output) == {"b", "c"}
    assert state.node_results["call"].data == child_state.output
    assert state.output == child_state.output  # the parent's one final node: the call
