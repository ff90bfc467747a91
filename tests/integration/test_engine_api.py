"""Engine conveniences: workflows given to the constructor, listing workflows."""

from __future__ import annotations

import pytest

from spane_py import ExecutionContext, NodeRegistry, Workflow, WorkflowEngine

wf = Workflow("greet")


@wf.node()
async def hello(name: str) -> str:
    return f"hello {name}"


async def test_workflows_given_to_the_constructor_are_registered_on_start(
    redis_url: str, key_prefix: str
) -> None:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> object:
        return ctx.input_data

    registry.register("echo", echo)
    json_wf = {"id": "echo-wf", "nodes": [{"id": "e", "type": "echo"}]}
    engine = WorkflowEngine(
        registry, redis_url=redis_url, key_prefix=key_prefix, workflows=[wf, json_wf]
    )
    async with engine:
        listed = await engine.list_workflows()
        assert [(r.workflow_id, r.version) for r in listed] == [("echo-wf", 1), ("greet", 1)]
        await engine.start_workers(2)
        state = await engine.run_workflow("greet", "ada", timeout=10)
        assert state.node_results["hello"].data == "hello ada"
        assert (await engine.run_workflow("echo-wf", [1], timeout=10)).status == "completed"
        versions = await engine.list_workflow_versions("greet")
        assert [v.version for v in versions] == [1]
        await engine.purge()


async def test_enqueue_bulk_starts_one_execution_per_input(redis_url: str, key_prefix: str) -> None:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> object:
        return ctx.input_data

    registry.register("echo", echo)
    engine = WorkflowEngine(
        registry,
        redis_url=redis_url,
        key_prefix=key_prefix,
        workflows=[{"id": "echo-wf", "nodes": [{"id": "e", "type": "echo"}]}],
    )
    async with engine:
        await engine.start_workers(4)
        ids = await engine.enqueue_bulk("echo-wf", [{"n": i} for i in range(20)], priority=7)
        assert len(set(ids)) == 20
        states = [await engine.wait_for_execution(e, timeout=10) for e in ids]
        assert [s.node_results["e"].data for s in states] == [{"n": i} for i in range(20)]
        assert {s.priority for s in states} == {7}
        assert await engine.enqueue_bulk("echo-wf", []) == []
        await engine.purge()


async def test_enqueue_bulk_checks_every_input_before_writing(
    redis_url: str, key_prefix: str
) -> None:
    from spane_py import InvalidEnqueueOptionsError, SerializationError

    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> object:
        return ctx.input_data

    registry.register("echo", echo)
    engine = WorkflowEngine(
        registry,
        redis_url=redis_url,
        key_prefix=key_prefix,
        workflows=[{"id": "echo-wf", "nodes": [{"id": "e", "type": "echo"}]}],
    )
    async with engine:
        with pytest.raises(SerializationError, match="initial data #2"):
            await engine.enqueue_bulk("echo-wf", [1, 2, float("nan")])
        with pytest.raises(InvalidEnqueueOptionsError, match="sequence"):
            await engine.enqueue_bulk("echo-wf", {"a": 1})  # type: ignore[arg-type]
        assert await engine.store.get_execution_count() == 0
        assert (await engine.get_queue_stats()).queued == 0
        await engine.purge()
