"""Artifacts end to end, on both stores: put and read back by nodes, references passed
downstream (and up from a sub-workflow), the engine's reads, the size limit."""

from __future__ import annotations

from typing import Any

import pytest

from spane_py import (
    ArtifactNotFoundError,
    ArtifactRef,
    ExecutionContext,
    ExecutionNotFoundError,
    ExecutionStatus,
    NodeRegistry,
)
from tests.integration._support import node, workflow
from tests.integration.conftest import EngineFactory, StoreFactory

BLOB = bytes(range(256)) * 64  # 16 KiB, every byte value


async def test_artifacts_round_trip_and_references_go_downstream(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()
    seen: dict[str, Any] = {}

    async def produce(ctx: ExecutionContext) -> Any:
        ref = await ctx.put_artifact("raw.bin", BLOB)
        await ctx.put_artifact("rows", [{"id": 1, "ok": True}, {"id": 2, "ok": False}])
        await ctx.put_artifact("note.txt", b"plain text", content_type="text/plain")
        return {"raw": ref, "rows": ctx.artifact_ref("rows")}  # small output, large data

    async def consume(ctx: ExecutionContext) -> Any:
        seen["input"] = ctx.input_data
        seen["raw"] = await ctx.get_artifact(ctx.input_data["raw"])  # the ref, now a dict
        seen["rows"] = await ctx.get_artifact("rows")  # this execution's, by name
        try:
            await ctx.get_artifact("missing")
        except ArtifactNotFoundError as exc:
            seen["missing"] = exc.message
        return len(seen["raw"])

    registry.register("produce", produce)
    registry.register("consume", consume)
    engine = await make_engine(registry, new_store())
    await engine.register_workflow(workflow("art", node("p", "produce"), node("c", "consume", "p")))
    await engine.start_workers()
    state = await engine.run_workflow("art", None, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED, state.error
    eid = state.execution_id
    assert seen["input"] == {
        "raw": {"$artifact": "raw.bin", "execution_id": eid},
        "rows": {"$artifact": "rows", "execution_id": eid},
    }
    assert seen["raw"] == BLOB
    assert seen["rows"] == [{"id": 1, "ok": True}, {"id": 2, "ok": False}]
    assert "has no artifact 'missing'" in seen["missing"]
    assert state.output == len(BLOB)

    listed = await engine.list_artifacts(eid)
    assert [(a.name, a.node_id, a.content_type, a.size) for a in listed] == [
        ("note.txt", "p", "text/plain", 10),
        ("raw.bin", "p", "application/octet-stream", len(BLOB)),
        ("rows", "p", "application/json", len(b'[{"id":1,"ok":true},{"id":2,"ok":false}]')),
    ]
    raw = await engine.get_artifact(eid, "raw.bin")
    assert (raw.data, raw.value()) == (BLOB, BLOB)
    rows = await engine.get_artifact(eid, "rows")
    assert rows.value() == [{"id": 1, "ok": True}, {"id": 2, "ok": False}]
    trace = await engine.get_trace(eid)
    assert [a.name for a in trace.artifacts] == ["note.txt", "raw.bin", "rows"]
    with pytest.raises(ArtifactNotFoundError):
        await engine.get_artifact(eid, "nope")
    with pytest.raises(ExecutionNotFoundError):
        await engine.list_artifacts("00000000-0000-0000-0000-000000000000")


async def test_a_child_execution_hands_its_parent_a_reference(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()

    async def report(ctx: ExecutionContext) -> Any:
        return await ctx.put_artifact("report", {"pages": ctx.input_data})

    async def read(ctx: ExecutionContext) -> Any:
        ref = ArtifactRef.parse(ctx.input_data)
        assert ref is not None
        return {"from": ref.execution_id, "report": await ctx.get_artifact(ref)}

    async def put_item(ctx: ExecutionContext) -> Any:  # map items put into the map node's name
        return await ctx.put_artifact(f"item-{ctx.input_data}", ctx.input_data * 10)

    registry.register("report", report)
    registry.register("read", read)
    registry.register("put_item", put_item)
    engine = await make_engine(registry, new_store())
    await engine.register_workflow(workflow("child", node("r", "report")))
    await engine.register_workflow(
        workflow(
            "parent",
            node("call", "sub-workflow", config={"workflowId": "child"}),
            node("read", "read", "call"),
        )
    )
    await engine.register_workflow(
        workflow("items", node("each", "map", config={"nodeType": "put_item"}))
    )
    await engine.start_workers()
    state = await engine.run_workflow("parent", 3, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED, state.error
    (child,) = await engine.store.get_child_executions(state.execution_id)
    assert state.output == {"from": child.execution_id, "report": {"pages": 3}}
    assert await engine.list_artifacts(state.execution_id) == []
    assert [a.name for a in await engine.list_artifacts(child.execution_id)] == ["report"]

    mapped = await engine.run_workflow("items", [1, 2], timeout=20)
    assert mapped.status is ExecutionStatus.COMPLETED, mapped.error
    listed = await engine.list_artifacts(mapped.execution_id)
    assert [(a.name, a.node_id) for a in listed] == [("item-1", "each"), ("item-2", "each")]
    assert (await engine.get_artifact(mapped.execution_id, "item-2")).value() == 20


async def test_an_artifact_over_the_limit_fails_its_node(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()

    async def big(ctx: ExecutionContext) -> Any:
        await ctx.put_artifact("small", b"x" * 100)  # at the limit: kept
        await ctx.put_artifact("big.bin", b"x" * 101)
        return "unreachable"

    registry.register("big", big)
    engine = await make_engine(registry, new_store(), max_artifact_bytes=100)
    await engine.register_workflow(
        workflow("big", node("b", "big", retry_policy={"max_attempts": 3}))
    )
    await engine.start_workers()
    state = await engine.run_workflow("big", None, timeout=20)
    assert state.status is ExecutionStatus.FAILED
    assert state.error is not None
    assert "artifact 'big.bin' is 101 bytes, over the limit of 100 bytes" in state.error
    assert state.node_results["b"].attempts == 1  # not retried: it cannot fit the next time
    assert [a.name for a in await engine.list_artifacts(state.execution_id)] == ["small"]
