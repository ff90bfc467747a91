"""Issue 12, items 11 and 12, on both stores: a node that waited (wait, delay,
sub-workflow) has a span of its wait in the trace — resumed, due, timed out, its child
ended, or its execution cancelled; a failing map item's traceback keeps the frames of the
user's function."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.state import SpanView
from tests.integration._support import node, wait_until, workflow
from tests.integration.conftest import EngineFactory, StoreFactory


def missing_item(ctx: ExecutionContext) -> Any:
    """Raises for item 2, on a line the test finds by its comment."""
    if ctx.input_data == 2:
        raise LookupError(f"no such item: {ctx.input_data}")  # the raising line
    return ctx.input_data


@pytest.fixture
def reg() -> NodeRegistry:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    async def lookup(ctx: ExecutionContext) -> Any:
        return missing_item(ctx)

    registry.register("echo", echo)
    registry.register("lookup", lookup)
    return registry


@pytest.fixture
async def engine(
    new_store: StoreFactory, make_engine: EngineFactory, reg: NodeRegistry
) -> WorkflowEngine:
    # new_store first: torn down last, so the schema outlives the engine's workers.
    eng = await make_engine(reg, new_store(), sweep_interval_seconds=0.5, stale_after_seconds=2)
    await eng.start_workers(8)
    return eng


async def waiting(engine: WorkflowEngine, execution_id: str, node_id: str) -> None:
    async def check() -> bool:
        state = await engine.get_execution(execution_id)
        result = state.node_results.get(node_id)
        return result is not None and result.status == "waiting"

    await wait_until(check, timeout=15)


def span_of(spans: list[SpanView], node_id: str) -> SpanView:
    (span,) = [s for s in spans if s.node_id == node_id]
    return span


async def test_a_resumed_wait_has_the_span_of_its_wait(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow(
            "approval",
            node("ask", "echo"),
            node("approve", "wait", "ask", name="Approve the order"),
            node("act", "echo", "approve"),
        )
    )
    eid = await engine.enqueue_workflow("approval", {"order": 7})
    await waiting(engine, eid, "approve")
    began = (await engine.get_execution(eid)).node_results["approve"].started_at
    assert began is not None
    assert "approve" not in {s.node_id for s in (await engine.get_trace(eid)).spans}
    (token,) = await engine.list_resume_tokens(eid)

    assert await engine.resume(token.token, {"approved": True}) == eid
    state = await engine.wait_for_execution(eid, timeout=15)
    assert state.status == "completed"
    trace = await engine.get_trace(eid)
    assert sorted(s.node_id for s in trace.spans) == ["act", "approve", "ask"]
    span = span_of(trace.spans, "approve")
    assert span.status == "succeeded"
    assert span.name == "Approve the order"
    assert span.attempt == 1
    assert span.attributes == {
        "type": "wait",
        "workflow_version": 1,
        "waited": True,
        "wait": "event",
        "resumed": True,
    }
    # From the start of the wait to the resume, which started the next node.
    assert span.started_at == began
    assert span.ended_at is not None
    assert span.started_at <= span.ended_at <= span_of(trace.spans, "act").started_at
    assert span.ended_at == state.node_results["approve"].completed_at
    # The node counts among the nodes that ran (the metrics hear of the span).
    assert 'node_type="wait"' in await engine.metrics_text()


async def test_timed_out_waits_delays_and_sub_workflows_span_their_waits(
    engine: WorkflowEngine,
) -> None:
    await engine.register_workflow(workflow("child", node("c", "echo")))
    await engine.register_workflow(
        workflow(
            "waits",
            node("gate", "wait", config={"timeout": 300, "onTimeout": "continue"}),
            node("pause", "delay", "gate", config={"duration": 200}),
            node("call", "sub-workflow", "pause", config={"workflowId": "child"}),
        )
    )
    await engine.register_workflow(
        workflow("strict", node("gate", "wait", config={"timeoutSeconds": 0.3}))
    )
    state = await engine.run_workflow("waits", 1, timeout=20)
    assert state.status == "completed"
    spans = (await engine.get_trace(state.execution_id)).spans
    gate, pause, call = (span_of(spans, n) for n in ("gate", "pause", "call"))
    assert gate.status == "succeeded"
    assert gate.attributes["waited"] is True
    assert gate.attributes["wait"] == "event"
    assert gate.attributes["resumed"] is False  # its timeout ended it
    assert pause.attributes["waited"] is True
    assert pause.attributes["wait"] == "timer"
    assert call.attributes["waited"] is True
    assert call.attributes["wait"] == "child"
    for span in (gate, pause, call):
        result = state.node_results[span.node_id]
        assert span.started_at == result.started_at
        assert span.ended_at is not None
        assert span.started_at <= span.ended_at
    # The waits' spans cover their waits, not an instant: the timer's due time is in it.
    assert (pause.duration_ms or 0) >= 200
    assert (gate.duration_ms or 0) >= 300

    failed = await engine.run_workflow("strict", None, timeout=20)
    assert failed.status == "failed"
    span = span_of((await engine.get_trace(failed.execution_id)).spans, "gate")
    assert span.status == "failed"
    assert "not resumed within 0.3 s" in (span.error or "")
    assert span.attributes["waited"] is True
    assert span.attributes["resumed"] is False


async def test_a_wait_cut_short_by_a_cancel_has_its_span(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow("gate", node("approve", "wait"), node("act", "echo", "approve"))
    )
    eid = await engine.enqueue_workflow("gate")
    await waiting(engine, eid, "approve")
    assert await engine.cancel_execution(eid, "the order was withdrawn") is True
    trace = await engine.get_trace(eid)
    span = span_of(trace.spans, "approve")
    assert span.status == "cancelled"
    assert span.error == "the order was withdrawn"
    assert span.attributes["waited"] is True
    assert span.attributes["wait"] == "event"
    assert span.attributes["resumed"] is False
    assert span.started_at == trace.execution.node_results["approve"].started_at
    assert span.ended_at == trace.execution.node_results["approve"].completed_at
    assert "act" not in {s.node_id for s in trace.spans}  # it never ran
    # Cancelling again changes nothing and writes no second span.
    assert await engine.cancel_execution(eid) is False
    assert len((await engine.get_trace(eid)).spans) == 1


async def test_a_failing_map_item_keeps_the_users_traceback(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow(
            "lookups",
            node(
                "each",
                "map",
                config={"nodeType": "lookup"},
                retry_policy={"max_attempts": 1},
            ),
        )
    )
    state = await engine.run_workflow("lookups", [1, 2, 3], timeout=20)
    assert state.status == "failed"
    lines, first = inspect.getsourcelines(missing_item)
    offset = next(i for i, text in enumerate(lines) if "# the raising line" in text)
    frame = f"line {first + offset}, in {missing_item.__name__}"
    source = 'raise LookupError(f"no such item: {ctx.input_data}")'

    (dead,) = [i for i in await engine.get_dlq_items() if i.execution_id == state.execution_id]
    span = span_of((await engine.get_trace(state.execution_id)).spans, "each")
    for traceback in (dead.traceback, span.traceback):
        assert traceback is not None
        assert frame in traceback, traceback
        assert source in traceback
        assert "LookupError: no such item: 2" in traceback
        assert "map node 'each': item 1 failed" in traceback
