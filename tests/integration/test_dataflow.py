"""Data passing and branching through real workers (DESIGN.md, "Execution model")."""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    ExecutionContext,
    ExecutionStatus,
    NodeRegistry,
    NodeStatus,
    WorkflowEngine,
    skipped_result,
    success_result,
)
from tests.integration._support import Recorder, node, workflow


def _register_tag(rec: Recorder, registry: NodeRegistry) -> None:
    """``tag``: returns ``{"node": <its id>, "input": <its input>}``."""

    async def tag(ctx: ExecutionContext) -> Any:
        return {"node": ctx.node_id, "input": ctx.input_data}

    rec.register(registry, "tag", tag)


async def test_linear_chain_passes_each_output_to_the_next_node(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def inc(ctx: ExecutionContext) -> int:
        return int(ctx.input_data) + 1

    rec.register(registry, "inc", inc)
    await engine.register_workflow(
        workflow("chain", node("a", "inc"), node("b", "inc", "a"), node("c", "inc", "b"))
    )
    await engine.start_workers(4)

    eid = await engine.enqueue_workflow("chain", 10)
    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.error is None
    assert state.completed_at is not None
    assert {n: r.data for n, r in state.node_results.items()} == {"a": 11, "b": 12, "c": 13}
    assert all(r.status is NodeStatus.SUCCEEDED and r.success for r in state.node_results.values())
    assert all(r.attempts == 1 for r in state.node_results.values())
    # Strictly in order, each node seeing its parent's output.
    assert [(c.node_id, c.input_data) for c in rec.calls] == [("a", 10), ("b", 11), ("c", 12)]
    assert state.initial_data == 10


async def test_diamond_entry_gets_initial_data_single_parent_gets_its_data_join_gets_a_map(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)
    await engine.register_workflow(
        workflow(
            "diamond",
            node("a", "tag"),
            node("b", "tag", "a"),
            node("c", "tag", "a"),
            node("d", "tag", "b", "c"),
        )
    )
    await engine.start_workers(4)

    eid = await engine.enqueue_workflow("diamond", {"x": 1})
    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    a = {"node": "a", "input": {"x": 1}}
    b = {"node": "b", "input": a}
    c = {"node": "c", "input": a}
    assert state.node_results["a"].data == a
    assert state.node_results["b"].data == b
    assert state.node_results["c"].data == c
    assert state.node_results["d"].data == {"node": "d", "input": {"b": b, "c": c}}
    assert sorted(rec.nodes()) == ["a", "b", "c", "d"]
    assert rec.nodes()[0] == "a"
    assert rec.nodes()[-1] == "d"


async def test_wide_fan_out_and_fan_in(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)
    middle = [f"m{i}" for i in range(8)]
    await engine.register_workflow(
        workflow(
            "fan",
            node("root", "tag"),
            *(node(m, "tag", "root") for m in middle),
            node("join", "tag", *middle),
        )
    )
    await engine.start_workers(10)

    state = await engine.run_workflow("fan", "go", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    join_input = state.node_results["join"].data["input"]
    assert sorted(join_input) == sorted(middle)
    assert all(join_input[m]["node"] == m for m in middle)
    assert len(rec.of("join")) == 1  # claimed exactly once although 8 parents finished


async def test_if_else_runs_the_chosen_branch_skips_the_other_and_the_join_runs(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)

    async def check(ctx: ExecutionContext) -> Any:
        branch = "yes" if ctx.input_data["n"] > 0 else "no"
        return success_result({"branch": branch}, next_nodes=[branch])

    rec.register(registry, "check", check)
    await engine.register_workflow(
        workflow(
            "if-else",
            node("check", "check"),
            node("yes", "tag", "check"),
            node("no", "tag", "check"),
            node("join", "tag", "yes", "no"),
        )
    )
    await engine.start_workers(4)

    for n, chosen, other in ((5, "yes", "no"), (-5, "no", "yes")):
        eid = await engine.enqueue_workflow("if-else", {"n": n})
        state = await engine.wait_for_execution(eid, timeout=10)

        assert state.status is ExecutionStatus.COMPLETED, (n, state.error)
        results = state.node_results
        assert results["check"].next_nodes == [chosen]
        assert results[chosen].status is NodeStatus.SUCCEEDED
        assert results[chosen].data == {"node": chosen, "input": {"branch": chosen}}
        assert results[other].status is NodeStatus.SKIPPED
        assert results[other].skipped
        assert rec.of(other, eid) == []
        # The join has two parents: it gets {parent: data} of the parent that succeeded.
        assert results["join"].status is NodeStatus.SUCCEEDED
        assert results["join"].data == {"node": "join", "input": {chosen: results[chosen].data}}


async def test_skip_cascades_to_nodes_whose_only_parents_were_skipped(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)

    async def route(ctx: ExecutionContext) -> Any:
        return success_result("routed", next_nodes=["keep"])

    rec.register(registry, "route", route)
    # route -> keep -> after_keep
    # route -> drop -> drop2 -> drop3 (all skipped)
    # drop2 + keep -> mixed (one active parent: runs)
    await engine.register_workflow(
        workflow(
            "cascade",
            node("route", "route"),
            node("keep", "tag", "route"),
            node("after_keep", "tag", "keep"),
            node("drop", "tag", "route"),
            node("drop2", "tag", "drop"),
            node("drop3", "tag", "drop2"),
            node("mixed", "tag", "drop2", "keep"),
        )
    )
    await engine.start_workers(4)

    state = await engine.run_workflow("cascade", None, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    results = state.node_results
    for skipped in ("drop", "drop2", "drop3"):
        assert results[skipped].status is NodeStatus.SKIPPED, skipped
        assert rec.of(skipped) == []
    for ran in ("route", "keep", "after_keep", "mixed"):
        assert results[ran].status is NodeStatus.SUCCEEDED, ran
    assert results["mixed"].data["input"] == {"keep": results["keep"].data}


async def test_next_nodes_empty_skips_every_child(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)

    async def stop(ctx: ExecutionContext) -> Any:
        return success_result("stop here", next_nodes=[])

    rec.register(registry, "stop", stop)
    await engine.register_workflow(
        workflow("stop-early", node("a", "stop"), node("b", "tag", "a"), node("c", "tag", "b"))
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("stop-early", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["a"].data == "stop here"
    assert state.node_results["b"].status is NodeStatus.SKIPPED
    assert state.node_results["c"].status is NodeStatus.SKIPPED
    assert rec.nodes() == ["a"]


async def test_a_node_returning_skipped_result_skips_its_children(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)

    async def nothing_to_do(ctx: ExecutionContext) -> Any:
        return skipped_result()

    rec.register(registry, "nothing", nothing_to_do)
    await engine.register_workflow(
        workflow(
            "self-skip",
            node("a", "tag"),
            node("b", "nothing", "a"),
            node("c", "tag", "b"),
            node("d", "tag", "a"),
        )
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("self-skip", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["b"].status is NodeStatus.SKIPPED
    assert state.node_results["c"].status is NodeStatus.SKIPPED
    assert state.node_results["d"].status is NodeStatus.SUCCEEDED
    assert rec.of("c") == []


async def test_falsy_outputs_survive_the_round_trip(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    """SPANE turns 0, false and "" into null on the way through Postgres; we must not."""
    values = {"zero": 0, "false": False, "empty": "", "list": [], "none": None}

    async def emit(ctx: ExecutionContext) -> Any:
        return values[ctx.node_id]

    async def echo(ctx: ExecutionContext) -> Any:
        return {"got": ctx.input_data}

    rec.register(registry, "emit", emit)
    rec.register(registry, "echo", echo)
    await engine.register_workflow(
        workflow(
            "falsy",
            node("start", "echo"),
            *(node(k, "emit", "start") for k in values),
            *(node(f"after_{k}", "echo", k) for k in values),
        )
    )
    await engine.start_workers(8)

    state = await engine.run_workflow("falsy", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    for key, value in values.items():
        assert state.node_results[key].data == value
        assert type(state.node_results[key].data) is type(value)
        assert state.node_results[f"after_{key}"].data == {"got": value}


async def test_every_root_is_an_entry_node_getting_the_initial_data(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)
    await engine.register_workflow(
        workflow(
            "two-roots",
            node("left", "tag"),
            node("right", "tag"),
            node("j", "tag", "left", "right"),
        )
    )
    await engine.start_workers(4)

    state = await engine.run_workflow("two-roots", [1, 2], timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["left"].data == {"node": "left", "input": [1, 2]}
    assert state.node_results["right"].data == {"node": "right", "input": [1, 2]}
    assert state.node_results["j"].data["input"] == {
        "left": state.node_results["left"].data,
        "right": state.node_results["right"].data,
    }


async def test_nodes_unreachable_from_the_entry_node_are_skipped_with_a_warning(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)
    registered = await engine.register_workflow(
        workflow(
            "orphans",
            node("a", "tag"),
            node("b", "tag", "a"),
            node("orphan", "tag"),
            node("orphan_child", "tag", "orphan"),
            entry_node_id="a",
        )
    )
    assert any("orphan" in w for w in registered.warnings)
    await engine.start_workers(2)

    state = await engine.run_workflow("orphans", "in", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["orphan"].status is NodeStatus.SKIPPED
    assert state.node_results["orphan_child"].status is NodeStatus.SKIPPED
    assert sorted(rec.nodes()) == ["a", "b"]


async def test_next_nodes_naming_a_node_that_is_not_a_child_fails_the_node(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)

    async def lost(ctx: ExecutionContext) -> Any:
        return success_result("x", next_nodes=[ctx.input_data])

    rec.register(registry, "lost", lost)
    policy = {"max_attempts": 3, "backoff": {"type": "fixed", "delay": 10}}
    await engine.register_workflow(
        workflow(
            "bad-branch",
            node("pick", "lost", retry_policy=policy),
            node("real", "tag", "pick"),
            node("elsewhere", "tag"),
        )
    )
    await engine.start_workers(2)

    for chosen in ("nowhere", "elsewhere", "pick"):
        eid = await engine.enqueue_workflow("bad-branch", chosen)
        state = await engine.wait_for_execution(eid, timeout=10)
        assert state.status is ExecutionStatus.FAILED, chosen
        result = state.node_results["pick"]
        assert result.attempts == 1  # a wrong graph choice is not retried
        assert "'pick'" in (result.error or "")
        assert chosen in (result.error or "")
        assert rec.of("real", eid) == []


async def test_class_based_executor_like_spane_node_executors(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    class Multiply:
        def __init__(self, factor: int) -> None:
            self.factor = factor
            self.calls = 0

        async def execute(self, ctx: ExecutionContext) -> Any:
            self.calls += 1
            return success_result(ctx.input_data * self.factor * ctx.node_config.get("extra", 1))

    executor = Multiply(3)
    registry.register("multiply", executor)
    await engine.register_workflow(
        workflow("classy", node("a", "multiply"), node("b", "multiply", "a", config={"extra": 2}))
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("classy", 2, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["b"].data == 2 * 3 * 3 * 2
    assert executor.calls == 2


async def test_run_until_idle_processes_everything_then_returns(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_tag(rec, registry)
    await engine.register_workflow(
        workflow("idle", node("a", "tag"), node("b", "tag", "a"), node("c", "tag", "b"))
    )
    now = await engine.enqueue_workflow("idle", 1)
    later = await engine.enqueue_workflow("idle", 2, delay=0.3)

    await asyncio.wait_for(engine.run_until_idle(concurrency=4), 10)

    for eid in (now, later):
        assert (await engine.get_execution(eid)).status is ExecutionStatus.COMPLETED
    assert len(rec.calls) == 6
    stats = await engine.get_queue_stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 0)
