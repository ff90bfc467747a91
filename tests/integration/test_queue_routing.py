"""Routing nodes to queues through the engine: which queue a node goes to (the node's,
its type's, its workflow's, default), workers that consume only some queues, a queue no
worker consumes (visible, and its nodes run once one starts), the checks on names."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from spane_py import (
    ConfigurationError,
    ExecutionContext,
    ExecutionStatus,
    InMemoryExecutionStore,
    NodeRegistry,
    Workflow,
    WorkflowValidationError,
)
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import WorkflowDefinition
from spane_py.engine.routing import Routes
from tests.integration._support import node, wait_until, workflow
from tests.integration.conftest import EngineFactory


def pool_registry(ran: list[tuple[str, str]], pool: str) -> NodeRegistry:
    """``cpu`` on the default queue and ``gpu`` on queue "gpu"; each call records which
    pool ran which node."""
    registry = NodeRegistry()

    async def run(ctx: ExecutionContext) -> Any:
        ran.append((ctx.node_id, pool))
        return ctx.node_id

    registry.register("cpu", run)
    registry.register("gpu", run, queue="gpu")
    return registry


PIPELINE = workflow(
    "pipeline",
    node("prepare", "cpu"),
    node("render", "gpu", "prepare"),
    node("publish", "cpu", "render"),
)


async def test_each_node_runs_only_on_a_worker_of_its_queue(make_engine: EngineFactory) -> None:
    ran: list[tuple[str, str]] = []
    store = InMemoryExecutionStore()
    cpu = await make_engine(pool_registry(ran, "cpu-pool"), store)
    gpu = await make_engine(pool_registry(ran, "gpu-pool"), store, key_prefix=cpu.key_prefix)
    await cpu.register_workflow(PIPELINE)
    await cpu.start_workers(queues=["default"])
    await gpu.start_workers(queues=["gpu"])

    ids = [await cpu.enqueue_workflow("pipeline", i) for i in range(5)]
    for execution_id in ids:
        state = await cpu.wait_for_execution(execution_id, timeout=20)
        assert state.status is ExecutionStatus.COMPLETED

    assert len(ran) == 15
    for node_id, pool in ran:
        assert pool == ("gpu-pool" if node_id == "render" else "cpu-pool"), ran


async def test_a_queue_nobody_consumes_waits_visibly_until_a_worker_starts(
    make_engine: EngineFactory,
) -> None:
    ran: list[tuple[str, str]] = []
    engine = await make_engine(pool_registry(ran, "here"))
    await engine.register_workflow(PIPELINE)
    await engine.start_workers(queues=["default"])
    execution_id = await engine.enqueue_workflow("pipeline", 1)

    async def render_waits() -> bool:
        queues = {q.name: q for q in await engine.list_queues()}
        return "gpu" in queues and queues["gpu"].queued == 1

    await wait_until(render_waits, timeout=10, what="the render job waiting on queue gpu")
    queues = {q.name: q for q in await engine.list_queues()}
    assert queues["gpu"].unserved
    assert queues["gpu"].workers == 0
    assert queues["gpu"].oldest_waiting_s is not None
    assert queues["default"].workers == 1
    assert not queues["default"].unserved
    assert [n for n, _ in ran] == ["prepare"]
    assert (await engine.get_execution(execution_id)).status is ExecutionStatus.RUNNING

    await engine.start_workers(queues=["gpu"])
    state = await engine.wait_for_execution(execution_id, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED
    assert [n for n, _ in ran] == ["prepare", "render", "publish"]
    queues = {q.name: q for q in await engine.list_queues()}
    assert not any(q.unserved for q in queues.values())
    assert queues["gpu"].workers == 1


async def test_the_sweeper_warns_of_a_queue_nobody_consumes(
    make_engine: EngineFactory, caplog: pytest.LogCaptureFixture
) -> None:
    engine = await make_engine(pool_registry([], "here"))
    await engine.register_workflow(PIPELINE)
    await engine.start_workers(queues=["default"])
    await engine.enqueue_workflow("pipeline", 1)

    async def render_waits() -> bool:
        return any(q.name == "gpu" and q.queued for q in await engine.list_queues())

    await wait_until(render_waits, timeout=10, what="the render job waiting on queue gpu")
    await engine.sweep()
    assert "1 job(s) wait on queue 'gpu' and no live worker consumes it" in caplog.text
    caplog.clear()
    await engine.sweep()  # said once, not at every sweep
    assert "no live worker consumes it" not in caplog.text


async def test_live_workers_say_which_queues_they_consume(make_engine: EngineFactory) -> None:
    engine = await make_engine(pool_registry([], "here"))
    await engine.start_workers(3, queues=["gpu", "default"])

    async def beat() -> bool:
        return bool(await engine.live_workers())

    await wait_until(beat, timeout=10, what="the worker's heartbeat")
    [worker] = await engine.live_workers()
    assert worker.queues == ("gpu", "default")
    assert worker.concurrency == 3


async def test_default_queues_come_from_the_registry_and_the_workflows(
    make_engine: EngineFactory,
) -> None:
    registry = NodeRegistry()

    async def run(ctx: ExecutionContext) -> Any:
        return None

    registry.register("gpu", run, queue="gpu")
    engine = await make_engine(registry)
    assert engine.default_queues() == ["gpu"]
    # A workflow sending the delay (built in) to "timers" and nothing to default.
    await engine.register_workflow(
        workflow(
            "timed",
            node("wait", "delay", config={"duration": 1}),
            node("g", "gpu", "wait"),
            queue="timers",
        )
    )
    assert engine.default_queues() == ["gpu", "timers"]
    empty = await make_engine(NodeRegistry())
    assert empty.default_queues() == ["default"]


def _graph(definition: dict[str, Any]) -> Any:
    return compile_workflow(WorkflowDefinition.model_validate(definition))


def test_the_node_wins_over_its_type_which_wins_over_the_workflow() -> None:
    registry = NodeRegistry()

    async def run(ctx: ExecutionContext) -> Any:
        return None

    registry.register("typed", run, queue="from-type")
    registry.register("plain", run)
    registry.route("remote", "from-route")  # a type this process only routes
    graph = _graph(
        workflow(
            "w",
            node("own", "typed", queue="from-node"),
            node("typed", "typed", "own"),
            node("plain", "plain", "own"),
            node("remote", "remote", "own"),
            node("timer", "delay", "own", config={"duration": 1}),
            queue="from-workflow",
        )
    )
    routes = Routes(registry)
    assert {n: routes.node(graph, n) for n in graph.order} == {
        "own": "from-node",
        "typed": "from-type",
        "plain": "from-workflow",
        "remote": "from-route",
        "timer": "from-workflow",
    }
    assert routes.deadline(graph) == "from-node"  # with the first entry node
    bare = _graph(workflow("w", node("plain", "plain")))
    assert routes.node(bare, "plain") == "default"


def test_the_dsl_names_queues_in_the_definition() -> None:
    wf = Workflow("dsl-routed", queue="batch")

    @wf.node(queue="gpu")
    async def render(data: Any) -> Any:
        return data

    @wf.node(after=render)
    async def publish(data: Any) -> Any:
        return data

    definition = wf.definition()
    assert definition.queue == "batch"
    assert definition.node("render").queue == "gpu"
    assert definition.node("publish").queue is None
    assert definition.to_spane_json()["nodes"][0]["queue"] == "gpu"


def test_a_definition_without_queues_keeps_its_content_hash() -> None:
    """Definitions registered before queues existed hash the same: registering them again
    after an upgrade makes no new version. (The hash the code before queues gave.)"""
    plain = _graph(workflow("w", node("a", "delay", config={"duration": 1})))
    assert plain.content_hash == "3f6dc35783f9ccc5039d52c004fbe72569507b926715e71a4c3d66dd9f859619"
    routed = _graph(workflow("w", node("a", "delay", config={"duration": 1}), queue="q"))
    assert routed.content_hash != plain.content_hash


@pytest.mark.parametrize("bad", ["", "has space", "-lead", "x" * 65, "é", "gpu\n"])
def test_bad_queue_names_are_refused_everywhere(bad: str) -> None:
    registry = NodeRegistry()

    async def run(ctx: ExecutionContext) -> Any:
        return None

    with pytest.raises(ConfigurationError, match="queue"):
        registry.register("t", run, queue=bad)
    with pytest.raises(ConfigurationError, match="queue"):
        registry.route("t", bad)
    with pytest.raises(WorkflowValidationError, match="queue"):
        Workflow("w", queue=bad).definition()
    with pytest.raises(WorkflowValidationError, match="queue"):
        _graph_via_engine_checks(
            workflow("w", node("a", "delay", config={"duration": 1}, queue=bad))
        )


def _graph_via_engine_checks(definition: dict[str, Any]) -> None:
    from spane_py.definitions.loading import parse_definition

    parse_definition(definition)


async def test_a_worker_needs_good_queue_names(make_engine: EngineFactory) -> None:
    engine = await make_engine(NodeRegistry())
    with pytest.raises(ConfigurationError, match="at least one queue"):
        await engine.start_workers(queues=[])
    with pytest.raises(ConfigurationError, match="not valid"):
        await engine.start_workers(queues=["ok", "not ok"])
    with pytest.raises(ConfigurationError, match="list of queue names"):
        await engine.start_workers(queues="gpu")


async def test_retries_delays_and_pause_work_on_a_queue_of_their_own(
    make_engine: EngineFactory,
) -> None:
    """A workflow entirely on queue "batch", served by a worker of that queue only: a
    retried node (backoff), a delay (built in, on the workflow's queue), a pause and a
    resume all keep the work on "batch"."""
    attempts: list[int] = []
    release = asyncio.Event()
    registry = NodeRegistry()

    async def flaky(ctx: ExecutionContext) -> Any:
        attempts.append(ctx.attempt)
        if ctx.attempt == 1:
            raise RuntimeError("first attempt fails")
        return "ok"

    async def held(ctx: ExecutionContext) -> Any:
        await release.wait()
        return "held"

    async def done(ctx: ExecutionContext) -> Any:
        return "done"

    registry.register("flaky", flaky)
    registry.register("held", held)
    registry.register("done", done)
    engine = await make_engine(registry)
    await engine.register_workflow(
        workflow(
            "batchy",
            node(
                "f",
                "flaky",
                retryPolicy={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 50}},
            ),
            node("d", "delay", "f", config={"duration": 50}),
            node("h", "held", "d"),
            node("z", "done", "h"),
            queue="batch",
        )
    )
    await engine.start_workers(queues=["batch"])
    execution_id = await engine.enqueue_workflow("batchy", None)

    async def holding() -> bool:
        nodes = (await engine.get_execution(execution_id)).node_results
        return "h" in nodes and nodes["h"].status.value == "running"

    await wait_until(holding, timeout=10, what="node h running")
    assert await engine.pause_execution(execution_id)
    release.set()

    async def paused_with_h_done() -> bool:
        state = await engine.get_execution(execution_id)
        return (
            state.status is ExecutionStatus.PAUSED
            and state.node_results["h"].status.value == "succeeded"
        )

    await wait_until(paused_with_h_done, timeout=10, what="h done while paused")
    assert await engine.resume_execution(execution_id)
    state = await engine.wait_for_execution(execution_id, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["f"].attempts == 2
    assert attempts == [1, 2]
    assert state.node_results["z"].data == "done"
    queues = {q.name: q for q in await engine.list_queues()}
    assert queues["batch"].workers == 1
    assert "default" not in [w for w in (await engine.live_workers())[0].queues]
