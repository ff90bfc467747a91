"""OpenTelemetry export: one trace per execution, one span per node attempt, the
execution's span as their parent, sub-workflows inside their parent's trace."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from spane_py import ConfigurationError, InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.observability import otel, trace_ids
from tests.observability._support import CHAIN, FAILING, FLAKY, node, register_types, workflow

CHILD = workflow("child", node("c1", "echo"), node("c2", "echo", "c1"))
PARENT = workflow(
    "parent",
    node("a", "echo"),
    node("sub", "sub-workflow", "a", config={"workflowId": "child"}),
    node("b", "echo", "sub"),
)


@pytest.fixture
def exporter() -> InMemorySpanExporter:
    return InMemorySpanExporter()


@pytest.fixture
def provider(exporter: InMemorySpanExporter) -> Iterator[TracerProvider]:
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider
    otel.disable()
    provider.shutdown()


@pytest.fixture
async def engine(
    registry: NodeRegistry, redis_url: str, key_prefix: str, provider: TracerProvider
) -> AsyncIterator[WorkflowEngine]:
    register_types(registry)
    eng = WorkflowEngine(
        registry, InMemoryExecutionStore(), redis_url=redis_url, key_prefix=key_prefix,
        tracing=provider,
    )  # fmt: skip
    await eng.start()
    for definition in (CHAIN, FAILING, FLAKY, CHILD, PARENT):
        await eng.register_workflow(definition)
    await eng.start_workers()
    try:
        yield eng
    finally:
        queue = eng.queue
        await eng.stop_workers(grace_seconds=1.0)
        await queue.purge()
        await eng.close()


def kind(span: ReadableSpan) -> object:
    return (span.attributes or {}).get("spane.kind")


def of(exporter: InMemorySpanExporter, execution_id: str, what: str) -> list[ReadableSpan]:
    return [
        s
        for s in exporter.get_finished_spans()
        if kind(s) == what and (s.attributes or {}).get("spane.execution_id") == execution_id
    ]


async def test_one_trace_per_execution_and_one_span_per_node_attempt(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    ids = [(await engine.run_workflow("chain", i)).execution_id for i in range(3)]
    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {uuid.UUID(eid).int for eid in ids}
    for eid in ids:
        nodes, (root,) = of(exporter, eid, "node"), of(exporter, eid, "execution")
        assert sorted(s.name for s in nodes) == ["a", "b"]
        assert all(s.context.trace_id == uuid.UUID(eid).int for s in [*nodes, root])
        assert root.parent is None
        assert root.context.span_id == trace_ids.execution_span_id(eid)
        assert root.name == "chain"
        assert root.status.status_code is StatusCode.UNSET
        for s in nodes:
            assert s.parent is not None
            assert s.parent.span_id == root.context.span_id
            assert root.start_time is not None
            assert root.end_time is not None
            assert root.start_time <= (s.start_time or 0) <= (s.end_time or 0) <= root.end_time
        # The OTel span ids are the store's span ids, hashed: the two traces agree.
        stored = (await engine.get_trace(eid)).spans
        assert {trace_ids.record_span_id(s.span_id) for s in stored} == {
            s.context.span_id for s in nodes
        }
    attrs = dict(of(exporter, ids[0], "node")[0].attributes or {})
    assert attrs["spane.workflow_id"] == "chain"
    assert attrs["spane.workflow_version"] == 1
    assert attrs["spane.node_type"] == "echo"
    assert attrs["spane.attempt"] == 1
    assert attrs["spane.status"] == "succeeded"
    assert str(attrs["spane.worker_id"])


async def test_a_retried_node_has_one_span_per_attempt(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    eid = (await engine.run_workflow("flaky", 1)).execution_id
    first, second = sorted(of(exporter, eid, "node"), key=lambda s: s.start_time or 0)
    assert (first.name, second.name) == ("f", "f")
    assert first.attributes is not None
    assert second.attributes is not None
    assert (first.attributes["spane.attempt"], second.attributes["spane.attempt"]) == (1, 2)
    assert first.attributes["spane.status"] == "retrying"
    assert first.status.status_code is StatusCode.ERROR
    assert first.status.description == "RuntimeError: first attempt fails"
    (event,) = first.events
    assert event.name == "exception"
    assert event.attributes is not None
    assert "first attempt fails" in str(event.attributes["exception.stacktrace"])
    assert second.status.status_code is StatusCode.UNSET
    assert first.context.span_id != second.context.span_id
    assert len({first.context.trace_id, second.context.trace_id}) == 1


async def test_failures_are_error_spans(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    eid = (await engine.run_workflow("failing", 1)).execution_id
    nodes = {s.name: s for s in of(exporter, eid, "node")}
    assert nodes["a"].status.status_code is StatusCode.UNSET
    assert nodes["b"].status.status_code is StatusCode.ERROR
    (root,) = of(exporter, eid, "execution")
    assert root.status.status_code is StatusCode.ERROR
    assert root.attributes is not None
    assert root.attributes["spane.status"] == "failed"


async def test_a_sub_workflow_is_traced_under_its_node(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    state = await engine.run_workflow("parent", 1)
    assert state.status == "completed"
    eid = state.execution_id
    (child_state,) = (await engine.get_trace(eid)).children
    child = child_state.execution_id
    spans = exporter.get_finished_spans()
    assert {s.context.trace_id for s in spans} == {uuid.UUID(eid).int}  # one trace

    parent_nodes = {s.name: s for s in of(exporter, eid, "node")}
    assert set(parent_nodes) == {"a", "sub", "b"}
    (child_root,) = of(exporter, child, "execution")
    assert child_root.parent is not None
    assert child_root.parent.span_id == parent_nodes["sub"].context.span_id
    child_nodes = of(exporter, child, "node")
    assert sorted(s.name for s in child_nodes) == ["c1", "c2"]
    assert all(
        s.parent is not None and s.parent.span_id == child_root.context.span_id for s in child_nodes
    )
    assert child_root.attributes is not None
    assert child_root.attributes["spane.parent_execution_id"] == eid
    assert child_root.attributes["spane.depth"] == 1


async def test_a_resumed_wait_is_exported_as_the_span_of_its_wait(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    await engine.register_workflow(
        workflow("gate", node("approve", "wait"), node("after", "echo", "approve"))
    )
    eid = await engine.enqueue_workflow("gate")

    async def token() -> str | None:
        tokens = await engine.list_resume_tokens(eid)
        return tokens[0].token if tokens else None

    deadline = asyncio.get_running_loop().time() + 15
    while (found := await token()) is None:
        assert asyncio.get_running_loop().time() < deadline, "the wait never began"
        await asyncio.sleep(0.02)
    await engine.resume(found, "ok")
    assert (await engine.wait_for_execution(eid, timeout=15)).status == "completed"

    spans = {s.name: s for s in of(exporter, eid, "node")}
    assert set(spans) == {"approve", "after"}
    wait = spans["approve"]
    assert wait.attributes is not None
    assert wait.attributes["spane.waited"] is True
    assert wait.attributes["spane.wait"] == "event"
    assert wait.attributes["spane.resumed"] is True
    assert wait.attributes["spane.status"] == "succeeded"
    assert "spane.waited" not in (spans["after"].attributes or {})
    assert wait.parent is not None
    assert wait.parent.span_id == trace_ids.execution_span_id(eid)
    stored = {s.node_id: s for s in (await engine.get_trace(eid)).spans}
    assert wait.context.span_id == trace_ids.record_span_id(stored["approve"].span_id)
    assert wait.start_time is not None
    assert wait.end_time is not None
    assert wait.start_time <= wait.end_time <= (spans["after"].start_time or 0)


async def test_a_traceparent_in_the_metadata_joins_the_callers_trace(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    caller = trace_ids.TraceParent(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7)
    state = await engine.run_workflow("chain", 1, metadata={"traceparent": caller.header()})
    eid = state.execution_id
    (root,) = of(exporter, eid, "execution")
    assert root.context.trace_id == caller.trace_id
    assert root.parent is not None
    assert root.parent.span_id == caller.span_id
    assert {s.context.trace_id for s in of(exporter, eid, "node")} == {caller.trace_id}

    # A replay is a trace of its own.
    replay = await engine.replay_execution(eid)
    await engine.wait_for_execution(replay)
    assert "traceparent" not in (await engine.get_execution(replay)).metadata
    (replayed,) = of(exporter, replay, "execution")
    assert replayed.context.trace_id == uuid.UUID(replay).int


async def test_an_unsampled_caller_gets_no_spans(
    engine: WorkflowEngine, exporter: InMemorySpanExporter
) -> None:
    unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
    state = await engine.run_workflow("parent", 1, metadata={"traceparent": unsampled})
    assert state.status == "completed"
    assert exporter.get_finished_spans() == ()


async def test_closing_the_engine_stops_the_export(
    registry: NodeRegistry, redis_url: str, key_prefix: str, provider: TracerProvider
) -> None:
    engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix,
                            tracing=provider)  # fmt: skip
    async with engine:
        assert otel.active() is not None
    assert otel.active() is None


async def test_tracing_needs_an_sdk_provider(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    # No global provider is set in the tests: the API's proxy cannot take derived ids.
    engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix, tracing=True)
    with pytest.raises(ConfigurationError, match="opentelemetry-sdk TracerProvider"):
        await engine.start()
    await engine.close()


def test_enable_and_disable(provider: TracerProvider) -> None:
    first = otel.enable(provider)
    second = otel.enable(provider)  # replaces the first
    assert otel.active() is second is not first
    otel.disable()
    otel.disable()
    assert otel.active() is None


async def test_tracing_must_be_a_provider(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix,
                            tracing="yes please")  # fmt: skip
    with pytest.raises(ConfigurationError, match="opentelemetry-sdk TracerProvider"):
        await engine.start()
    await engine.close()
