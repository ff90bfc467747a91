"""The event history on both stores: an execution's events recorded as they are streamed,
queried by execution, type and time range (``engine.get_events``)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from spane_py import ExecutionContext, ExecutionStatus, NodeRegistry
from spane_py.observability import events
from tests.integration._support import node, workflow
from tests.integration.conftest import EngineFactory, StoreFactory


def _registry() -> NodeRegistry:
    registry = NodeRegistry()

    async def step(ctx: ExecutionContext) -> Any:
        return ctx.node_id

    async def flaky(ctx: ExecutionContext) -> Any:
        if ctx.attempt == 1:
            raise ConnectionError("try again")
        return "ok"

    registry.register("step", step)
    registry.register("flaky", flaky)
    return registry


FLOW = workflow(
    "flow",
    node("a", "step"),
    node("b", "flaky", "a", retry_policy={"max_attempts": 2, "backoff": {"delay": 1}}),
)


async def test_an_executions_events_are_recorded_in_order(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    engine = await make_engine(_registry(), new_store(), event_history=True)
    await engine.register_workflow(FLOW)
    await engine.start_workers()
    state = await engine.run_workflow("flow", {"n": 1}, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED, state.error
    eid = state.execution_id

    history = await engine.get_events(eid)
    assert [(e.type, e.node_id) for e in history] == [
        (events.EXECUTION_STARTED, None),
        (events.NODE_STARTED, "a"),
        (events.NODE_COMPLETED, "a"),
        (events.NODE_STARTED, "b"),
        (events.NODE_RETRYING, "b"),
        (events.NODE_STARTED, "b"),
        (events.NODE_COMPLETED, "b"),
        (events.EXECUTION_COMPLETED, None),
    ]
    assert {(e.execution_id, e.workflow_id) for e in history} == {(eid, "flow")}
    assert [e.at for e in history] == sorted(e.at for e in history)
    retrying = history[4]
    assert retrying.fields["attempt"] == 1
    assert "try again" in retrying.fields["error"]
    assert [e.fields.get("attempt") for e in history if e.type == events.NODE_STARTED] == [
        1,
        1,
        2,
    ]

    # By type, and by time range: since inclusive, until exclusive.
    started = await engine.get_events(eid, types=events.NODE_STARTED)
    assert [e.node_id for e in started] == ["a", "b", "b"]
    ends = await engine.get_events(
        eid, types=[events.NODE_RETRYING, events.EXECUTION_COMPLETED], limit=1
    )
    assert [e.type for e in ends] == [events.NODE_RETRYING]
    window = await engine.get_events(eid, since=history[1].at, until=history[-1].at)
    assert window == [e for e in history if history[1].at <= e.at < history[-1].at]
    assert history[1] in window
    assert await engine.get_events(eid, since=history[-1].at + timedelta(seconds=1)) == []


async def test_events_by_type_across_executions(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    engine = await make_engine(_registry(), new_store(), event_history=True)
    await engine.register_workflow(workflow("one", node("a", "step")))
    await engine.start_workers()
    first = await engine.run_workflow("one", 1, timeout=20)
    second = await engine.run_workflow("one", 2, timeout=20)
    completed = await engine.get_events(types=[events.EXECUTION_COMPLETED])
    assert [e.execution_id for e in completed] == [first.execution_id, second.execution_id]
    later = await engine.get_events(types=[events.EXECUTION_COMPLETED], since=completed[1].at)
    assert [e.execution_id for e in later] == [second.execution_id]
    registered = await engine.get_events(types=events.WORKFLOW_REGISTERED)  # no execution
    assert [(e.execution_id, e.workflow_id) for e in registered] == [(None, "one")]


async def test_an_engine_without_the_history_records_nothing(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    engine = await make_engine(_registry(), new_store())  # the default: off
    await engine.register_workflow(workflow("one", node("a", "step")))
    await engine.start_workers()
    state = await engine.run_workflow("one", 1, timeout=20)
    assert state.status is ExecutionStatus.COMPLETED
    assert await engine.get_events() == []
