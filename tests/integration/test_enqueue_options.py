"""Enqueue options (idempotency key, delay, priority), waiting, and key-prefix isolation."""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from typing import Any

import pytest

from spane_py import (
    ExecutionContext,
    ExecutionNotFoundError,
    ExecutionStatus,
    ExecutionWaitTimeoutError,
    InMemoryExecutionStore,
    NodeRegistry,
    WorkflowEngine,
)
from tests.integration._support import Recorder, node, wait_queue_empty, workflow
from tests.integration.conftest import EngineFactory


async def _tag(ctx: ExecutionContext) -> Any:
    return {"node": ctx.node_id, "input": ctx.input_data}


async def test_idempotency_key_returns_the_first_execution_and_creates_nothing(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("orders", node("a", "tag")))
    await engine.register_workflow(workflow("invoices", node("a", "tag")))

    first = await engine.enqueue_workflow("orders", {"n": 1}, idempotency_key="order-42")
    again = await engine.enqueue_workflow("orders", {"n": 2}, idempotency_key="order-42")
    assert again == first
    assert await engine.store.get_execution_count() == 1
    assert (await engine.get_queue_stats()).queued == 1  # the second call sent no job

    await engine.start_workers(2)
    state = await engine.wait_for_execution(first, timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.initial_data == {"n": 1}

    # Still the same after the first execution finished.
    assert await engine.enqueue_workflow("orders", {"n": 3}, idempotency_key="order-42") == first
    # Another key, or the same key for another workflow, is another execution.
    other = await engine.enqueue_workflow("orders", {"n": 4}, idempotency_key="order-43")
    invoice = await engine.enqueue_workflow("invoices", {"n": 5}, idempotency_key="order-42")
    assert len({first, other, invoice}) == 3
    for eid in (other, invoice):
        assert (await engine.wait_for_execution(eid, timeout=10)).status is (
            ExecutionStatus.COMPLETED
        )
    await wait_queue_empty(engine)
    assert await engine.store.get_execution_count() == 3
    assert [c.input_data for c in rec.calls] == [{"n": 1}, {"n": 4}, {"n": 5}]


async def test_concurrent_enqueues_with_one_idempotency_key_make_one_execution(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("orders", node("a", "tag")))
    await engine.start_workers(2)

    ids = await asyncio.gather(
        *(engine.enqueue_workflow("orders", i, idempotency_key="same") for i in range(10))
    )

    assert len(set(ids)) == 1
    await engine.wait_for_execution(ids[0], timeout=10)
    await wait_queue_empty(engine)
    assert await engine.store.get_execution_count() == 1
    assert len(rec.calls) == 1


@pytest.mark.parametrize("delay", [1.0, timedelta(seconds=1)], ids=["seconds", "timedelta"])
async def test_delay_defers_the_start(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder, delay: float | timedelta
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("later", node("a", "tag"), node("b", "tag", "a")))
    await engine.start_workers(2)

    started = time.monotonic()
    eid = await engine.enqueue_workflow("later", "x", delay=delay)
    stats = await engine.get_queue_stats()
    assert (stats.queued, stats.scheduled) == (0, 1)

    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    waited = rec.of("a")[0].at - started  # not early: the lower bound is exact
    assert 0.98 <= waited < 6.0, waited
    # Only the start is deferred: the next node follows at once, not a second later.
    assert rec.of("b")[0].at - rec.of("a")[0].at < 0.9


async def test_definition_defaults_for_delay_and_priority_apply(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("defaults", node("a", "tag"), delay=300, priority=9))
    await engine.start_workers(2)

    started = time.monotonic()
    state = await engine.run_workflow("defaults", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.priority == 9
    assert rec.of("a")[0].at - started >= 0.28
    # An explicit option overrides the default.
    started = time.monotonic()
    state = await engine.run_workflow("defaults", delay=0, priority=2, timeout=10)
    assert state.priority == 2
    assert rec.of("a")[1].at - started < 0.25


@pytest.mark.parametrize("priority", [1, 5, 10])
async def test_priority_in_range_is_accepted_and_recorded(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder, priority: int
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(workflow("prio", node("a", "tag"), node("b", "tag", "a")))
    await engine.start_workers(2)

    state = await engine.run_workflow("prio", priority=priority, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.priority == priority


async def test_priority_applies_to_every_node_not_only_the_entry(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    """SPANE applies priority to entry nodes only; here a high-priority execution's later
    nodes still go before a low-priority execution's waiting entry node."""
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(
        workflow("prio-chain", node("a", "tag"), node("b", "tag", "a"), node("c", "tag", "b"))
    )
    low = await engine.enqueue_workflow("prio-chain", "low", priority=1)
    high = await engine.enqueue_workflow("prio-chain", "high", priority=10)
    await engine.start_workers(1)  # one job at a time: the order is the queue's order

    for eid in (low, high):
        assert (await engine.wait_for_execution(eid, timeout=10)).status is (
            ExecutionStatus.COMPLETED
        )
    order = [(("high" if c.execution_id == high else "low"), c.node_id) for c in rec.calls]
    assert order == [
        ("high", "a"),
        ("high", "b"),
        ("high", "c"),
        ("low", "a"),
        ("low", "b"),
        ("low", "c"),
    ]


async def test_wait_for_execution_times_out_with_a_timeout_error(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    release = asyncio.Event()

    async def block(ctx: ExecutionContext) -> Any:
        await release.wait()
        return "released"

    registry.register("block", block)
    await engine.register_workflow(workflow("slow-wait", node("a", "block")))
    await engine.start_workers(2)
    eid = await engine.enqueue_workflow("slow-wait")

    started = time.monotonic()
    with pytest.raises(ExecutionWaitTimeoutError) as caught:
        await engine.wait_for_execution(eid, timeout=0.3)
    elapsed = time.monotonic() - started

    assert 0.28 <= elapsed < 1.5, elapsed
    assert isinstance(caught.value, TimeoutError)
    assert caught.value.execution_id == eid
    assert eid in str(caught.value)
    assert "running" in str(caught.value)
    # The execution itself is unaffected and can still be waited for.
    with pytest.raises(TimeoutError):
        await engine.wait_for_execution(eid, timeout=0.05)
    release.set()
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["a"].data == "released"


async def test_waiting_for_an_unknown_execution_fails_at_once(engine: WorkflowEngine) -> None:
    started = time.monotonic()
    with pytest.raises(ExecutionNotFoundError) as caught:
        await engine.wait_for_execution("no-such-execution", timeout=5)
    assert time.monotonic() - started < 1.0
    assert "no-such-execution" in str(caught.value)


async def test_engines_with_different_key_prefixes_do_not_take_each_others_jobs(
    engine: WorkflowEngine, registry: NodeRegistry, make_engine: EngineFactory
) -> None:
    ran: list[tuple[str, str]] = []

    def executor(owner: str) -> Any:
        async def run(ctx: ExecutionContext) -> Any:
            ran.append((owner, ctx.execution_id))
            return owner

        return run

    registry.register("work", executor("A"))
    registry_b = NodeRegistry()
    registry_b.register("work", executor("B"))
    other = await make_engine(registry_b, InMemoryExecutionStore())
    assert other.key_prefix != engine.key_prefix
    same = workflow("iso", node("a", "work"))
    await engine.register_workflow(same)
    await other.register_workflow(same)

    await other.start_workers(4)  # only B has workers
    a_eid = await engine.enqueue_workflow("iso")
    b_eid = await other.enqueue_workflow("iso")

    b_state = await other.wait_for_execution(b_eid, timeout=10)
    assert b_state.node_results["a"].data == "B"
    # A barrier: B's job was sent after A's, and B's workers claim the oldest jobs first;
    # had they seen A's queue, they would have taken A's job by the time they took B's.
    # Everything B took has ended now.
    await wait_queue_empty(other)
    assert ("B", a_eid) not in ran
    assert not (await engine.get_execution(a_eid)).status.is_terminal
    assert (await engine.get_queue_stats()).queued == 1
    assert (await other.get_queue_stats()).queued == 0

    await other.purge()  # purging B's keys leaves A's job alone
    assert (await engine.get_queue_stats()).queued == 1

    await engine.start_workers(2)
    a_state = await engine.wait_for_execution(a_eid, timeout=10)
    assert a_state.status is ExecutionStatus.COMPLETED
    assert a_state.node_results["a"].data == "A"
    assert sorted(ran) == sorted([("A", a_eid), ("B", b_eid)])
