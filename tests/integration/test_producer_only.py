"""``WorkflowEngine(producer_only=True)``: a process that registers and enqueues workflows
whose executors live only in the workers (issue 12, item 14)."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from spane_py import (
    ConfigurationError,
    ExecutionContext,
    InMemoryExecutionStore,
    NodeNotRegisteredError,
    NodeRegistry,
    WorkflowValidationError,
)
from spane_py.errors import IssueKind
from tests.integration.conftest import EngineFactory

# SPANE JSON: its node types ("quote", "say") have executors only in the worker below.
DEFINITION: dict[str, Any] = {
    "id": "price",
    "entryNodeId": "quote",
    "nodes": [
        {"id": "quote", "type": "quote", "config": {"currency": "EUR"}, "outputs": ["say"]},
        {"id": "say", "type": "say", "inputs": ["quote"], "retryPolicy": {"maxAttempts": 3}},
    ],
}


async def quote(ctx: ExecutionContext) -> dict[str, Any]:
    return {"price": ctx.input_data["price"], "currency": ctx.node.config["currency"]}


async def say(ctx: ExecutionContext) -> str:
    return f"{ctx.input_data['price']} {ctx.input_data['currency']}"


def worker_registry() -> NodeRegistry:
    registry = NodeRegistry()
    registry.register("quote", quote)
    registry.register("say", say)
    return registry


async def test_a_producer_registers_and_enqueues_what_only_the_workers_can_run(
    make_engine: EngineFactory,
) -> None:
    store, prefix = InMemoryExecutionStore(), f"t{uuid.uuid4().hex[:12]}"
    # Without the option, the producer's empty registry refuses the definition, as before.
    plain = await make_engine(NodeRegistry(), InMemoryExecutionStore())
    with pytest.raises(NodeNotRegisteredError, match=r"registered: none"):
        await plain.register_workflow(DEFINITION)

    producer = await make_engine(
        NodeRegistry(), store, key_prefix=prefix, producer_only=True, close_store=False
    )
    worker = await make_engine(worker_registry(), store, key_prefix=prefix)
    registered = await producer.register_workflow(DEFINITION)
    assert (registered.workflow_id, registered.version) == ("price", 1)
    execution_id = await producer.enqueue_workflow("price", {"price": 80})

    await worker.start_workers(concurrency=2)
    state = await worker.wait_for_execution(execution_id, timeout=60)
    assert state.status == "completed", state.error
    assert state.node_results["say"].data == "80 EUR"


async def test_a_producer_still_checks_everything_but_where_the_executors_are(
    make_engine: EngineFactory,
) -> None:
    producer = await make_engine(NodeRegistry(), producer_only=True)
    broken = {
        "id": "broken",
        "nodes": [
            {"id": "a", "type": "anything", "outputs": ["b"]},
            {"id": "b", "type": "anything", "outputs": ["a", "ghost"]},
            {"id": "pause", "type": "delay", "config": {}},  # a built-in: its config is checked
            {"id": "each", "type": "map", "config": {"nodeType": "elsewhere"}},  # fine here
        ],
    }
    with pytest.raises(WorkflowValidationError) as caught:
        await producer.register_workflow(broken)
    kinds = [(i.kind, i.node_id) for i in caught.value.issues]
    assert kinds == [
        (IssueKind.UNKNOWN_REFERENCE, "b"),
        (IssueKind.CYCLE, "a"),
        (IssueKind.INVALID_CONFIG, "pause"),
    ]
    assert await producer.store.get_workflow_count(active_only=False) == 0


async def test_a_producer_runs_no_worker(make_engine: EngineFactory) -> None:
    producer = await make_engine(NodeRegistry(), producer_only=True)
    with pytest.raises(ConfigurationError, match="producer_only"):
        await producer.start_workers(concurrency=1)
    with pytest.raises(ConfigurationError, match="producer_only"):
        await producer.run_worker(burst=True)


async def test_a_worker_without_the_executor_fails_the_node_and_names_the_type(
    make_engine: EngineFactory,
) -> None:
    store, prefix = InMemoryExecutionStore(), f"t{uuid.uuid4().hex[:12]}"
    producer = await make_engine(
        NodeRegistry(), store, key_prefix=prefix, producer_only=True, close_store=False
    )
    registry = NodeRegistry()
    registry.register("quote", quote)  # "say" was not deployed to this worker
    worker = await make_engine(registry, store, key_prefix=prefix)
    await producer.register_workflow(DEFINITION)
    execution_id = await producer.enqueue_workflow("price", {"price": 80})

    await worker.start_workers(concurrency=2)
    state = await worker.wait_for_execution(execution_id, timeout=60)
    assert state.status == "failed"
    assert state.node_results["quote"].status == "succeeded"
    error = state.node_results["say"].error or ""
    assert "no executor is registered for node type 'say' in this process" in error, error
    assert "registered: quote" in error, error
    # Not retried (another attempt in this worker cannot succeed): it waits in the DLQ.
    assert state.node_results["say"].attempts == 1
    dead = await worker.get_dlq_items()
    assert [(d.node_id, d.attempts) for d in dead] == [("say", 1)]
    # Once the executor is deployed, retrying the dead letter completes the execution.
    registry.register("say", say)
    assert dead[0].dlq_id is not None
    await worker.retry_dlq_item(dead[0].dlq_id)
    state = await worker.wait_for_execution(execution_id, timeout=60)
    assert state.status == "completed", state.error
    assert state.node_results["say"].data == "80 EUR"
