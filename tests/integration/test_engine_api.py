"""Engine conveniences: workflows given to the constructor, listing workflows."""

from __future__ import annotations

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
        await engine.queue.purge()
