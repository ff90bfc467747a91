"""The SPANE JSON shape, the Python DSL, and what an executor sees in its context."""

from __future__ import annotations

import json
from typing import Any

from pydantic import BaseModel

from spane_py import (
    ExecutionContext,
    ExecutionResult,
    ExecutionStatus,
    NodeRegistry,
    NodeStatus,
    RetryPolicy,
    Workflow,
    WorkflowEngine,
    success_result,
)
from tests.integration._support import Recorder, node, workflow

SPANE_JSON = {
    "id": "spane-shape",
    "name": "SPANE shape",
    "description": "written for the TypeScript engine",
    "entryNodeId": "fetch",
    "nodes": [
        {
            "id": "fetch",
            "type": "flaky",
            "name": "Fetch",
            "config": {
                "url": "https://example.invalid",
                "retryPolicy": {
                    "maxAttempts": 3,
                    "backoff": {"type": "fixed", "delay": 20},
                },
            },
            "inputs": [],
            "outputs": ["route"],
        },
        {
            "id": "route",
            "type": "route",
            "config": {},
            "inputs": ["fetch"],
            "outputs": ["big", "small"],
        },
        {"id": "big", "type": "tag", "config": {}, "inputs": ["route"], "outputs": ["merge"]},
        {"id": "small", "type": "tag", "config": {}, "inputs": ["route"], "outputs": ["merge"]},
        {
            "id": "merge",
            "type": "tag",
            "config": {"retryPolicy": {"maxAttempts": 2, "continueOnFail": True}},
            "inputs": ["big", "small"],
            "outputs": [],
        },
    ],
    "triggers": [],
}


class Rows(BaseModel):
    rows: list[int]


def _register_spane_types(rec: Recorder, registry: NodeRegistry) -> None:
    async def flaky(ctx: ExecutionContext) -> Any:
        if ctx.attempt < 2:
            raise ConnectionError("first call fails")
        return {"size": ctx.input_data["size"], "url": ctx.node_config["url"]}

    async def route(ctx: ExecutionContext) -> Any:
        return success_result(
            ctx.input_data, next_nodes=["big" if ctx.input_data["size"] > 10 else "small"]
        )

    async def tag(ctx: ExecutionContext) -> Any:
        return {"node": ctx.node_id, "input": ctx.input_data}

    rec.register(registry, "flaky", flaky)
    rec.register(registry, "route", route)
    rec.register(registry, "tag", tag)


async def test_spane_json_registers_and_runs_unchanged(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    _register_spane_types(rec, registry)
    registered = await engine.register_workflow(json.dumps(SPANE_JSON))
    assert (registered.workflow_id, registered.version) == ("spane-shape", 1)
    # retryPolicy inside config is the node's retry policy.
    stored = await engine.get_workflow("spane-shape")
    assert stored.entry_node_id == "fetch"
    assert stored.node("fetch").effective_retry_policy.max_attempts == 3
    assert stored.node("merge").effective_retry_policy.continue_on_fail
    # The same dict (not text) is the same definition.
    assert (await engine.register_workflow(SPANE_JSON)).created is False
    await engine.start_workers(4)

    state = await engine.run_workflow("spane-shape", {"size": 42}, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    results = state.node_results
    assert results["fetch"].attempts == 2
    assert results["fetch"].data == {"size": 42, "url": "https://example.invalid"}
    assert results["route"].next_nodes == ["big"]
    assert results["small"].status is NodeStatus.SKIPPED
    assert results["merge"].data == {"node": "merge", "input": {"big": results["big"].data}}

    # And it reads back in the SPANE shape.
    spane = stored.to_spane_json()
    assert spane["entryNodeId"] == "fetch"
    assert spane["nodes"][0]["retryPolicy"]["maxAttempts"] == 3


async def test_dsl_workflow_registers_and_runs(engine: WorkflowEngine) -> None:
    wf = Workflow("dsl-etl", description="extract, transform, load")

    @wf.node()
    async def extract(data: dict[str, Any]) -> Rows:
        return Rows(rows=data["rows"])

    @wf.node(after=[extract])
    async def double(batch: Rows) -> list[int]:
        return [r * 2 for r in batch.rows]

    @wf.node(after=[extract])
    async def count(batch: Rows, ctx: ExecutionContext) -> int:
        ctx.log("info", "counting", rows=len(batch.rows))
        return len(batch.rows)

    attempts: list[int] = []

    @wf.node(
        after=[double, count],
        retry=RetryPolicy(max_attempts=2, backoff={"type": "fixed", "delay": 10}),
    )
    async def load(inputs: dict[str, Any], ctx: ExecutionContext) -> ExecutionResult:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise ConnectionError("warehouse busy")
        return success_result({"loaded": sum(inputs["double"]), "count": inputs["count"]})

    registered = await engine.register_workflow(wf)
    assert (registered.workflow_id, registered.version, registered.created) == ("dsl-etl", 1, True)
    assert (await engine.register_workflow(wf)).created is False
    await engine.start_workers(4)

    state = await engine.run_workflow("dsl-etl", {"rows": [1, 2, 3]}, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert state.node_results["extract"].data == {"rows": [1, 2, 3]}
    assert state.node_results["double"].data == [2, 4, 6]
    assert state.node_results["count"].data == 3
    assert state.node_results["load"].data == {"loaded": 12, "count": 3}
    assert state.node_results["load"].attempts == 2
    assert attempts == [1, 2]
    logs = await engine.store.get_logs(state.execution_id, "count")
    assert [(log.level, log.message, log.fields.get("rows")) for log in logs] == [
        ("info", "counting", 3)
    ]


async def test_dsl_input_that_does_not_match_the_annotation_fails_the_node(
    engine: WorkflowEngine,
) -> None:
    wf = Workflow("dsl-typed")

    @wf.node()
    async def start(data: Any) -> str:
        return "not a number"

    @wf.node(after=[start], retry=RetryPolicy(max_attempts=3))
    async def square(value: int) -> int:
        return value * value

    await engine.register_workflow(wf)
    await engine.start_workers(2)

    state = await engine.run_workflow("dsl-typed", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    result = state.node_results["square"]
    assert result.attempts == 1  # a type mismatch is not retried
    assert "'square'" in (result.error or "")


async def test_execution_context_fields_and_logs(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    seen: list[dict[str, Any]] = []

    async def tag(ctx: ExecutionContext) -> Any:
        ctx.log("debug", "tagging", node=ctx.node_id)
        return {"node": ctx.node_id, "input": ctx.input_data}

    async def inspect(ctx: ExecutionContext) -> Any:
        seen.append(
            {
                "workflow_id": ctx.workflow_id,
                "execution_id": ctx.execution_id,
                "node_id": ctx.node_id,
                "input_data": ctx.input_data,
                "node_config": ctx.node_config,
                "previous_results": dict(ctx.previous_results),
                "all_node_results": dict(ctx.all_node_results),
                "parent_execution_id": ctx.parent_execution_id,
                "depth": ctx.depth,
                "attempt": ctx.attempt,
                "workflow_version": ctx.workflow_version,
                "metadata": dict(ctx.metadata),
            }
        )
        ctx.log("info", "inspecting", attempt_seen=ctx.attempt, extra={"k": [1, 2]})
        ctx.log("plain message")
        if ctx.attempt == 1:
            ctx.log("warning", "about to fail")
            raise RuntimeError("try again")
        return "inspected"

    rec.register(registry, "tag", tag)
    rec.register(registry, "inspect", inspect)
    await engine.register_workflow(
        workflow(
            "context",
            node("a", "tag"),
            node("b", "tag", "a"),
            node("side", "tag", "a"),
            node(
                "c",
                "inspect",
                "b",
                config={"threshold": 3, "labels": ["x", "y"]},
                retry_policy={"max_attempts": 2, "backoff": {"type": "fixed", "delay": 10}},
            ),
        )
    )
    await engine.start_workers(1)  # one at a time: "side" has finished before "c" starts

    eid = await engine.enqueue_workflow("context", {"user": 7}, metadata={"source": "test"})
    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert state.metadata == {"source": "test"}
    assert len(seen) == 2
    first, second = seen
    b_data = state.node_results["b"].data
    assert b_data == {"node": "b", "input": {"node": "a", "input": {"user": 7}}}
    for view in seen:
        assert view["workflow_id"] == "context"
        assert view["execution_id"] == eid
        assert view["node_id"] == "c"
        assert view["input_data"] == b_data
        assert view["node_config"] == {"threshold": 3, "labels": ["x", "y"]}
        assert view["parent_execution_id"] is None
        assert view["depth"] == 0
        assert view["workflow_version"] == 1
        assert view["metadata"] == {"source": "test"}
        # Its parents' results, SPANE's ExecutionResult shape.
        assert set(view["previous_results"]) == {"b"}
        prev = view["previous_results"]["b"]
        assert isinstance(prev, ExecutionResult)
        assert prev.success
        assert prev.data == b_data
        # Every node finished so far, not itself.
        assert set(view["all_node_results"]) == {"a", "b", "side"}
        assert view["all_node_results"]["a"].data == state.node_results["a"].data
    assert (first["attempt"], second["attempt"]) == (1, 2)

    logs = await engine.store.get_logs(eid, "c")
    assert [(log.level, log.message) for log in logs] == [
        ("info", "inspecting"),
        ("info", "plain message"),
        ("warning", "about to fail"),  # logs of a failed attempt are kept
        ("info", "inspecting"),
        ("info", "plain message"),
    ]
    assert all(log.execution_id == eid and log.node_id == "c" for log in logs)
    assert logs[0].fields["attempt_seen"] == 1
    assert logs[0].fields["extra"] == {"k": [1, 2]}
    assert logs[0].fields["attempt"] == 1
    assert logs[3].fields["attempt"] == 2
    every = await engine.store.get_logs(eid)
    assert {log.node_id for log in every} == {"a", "b", "side", "c"}
    assert sum(1 for log in every if log.message == "tagging") == 3
