"""Duplicate job delivery, version pinning and the workflow cache, through real workers."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from spane_py import (
    ExecutionContext,
    ExecutionStatus,
    InMemoryExecutionStore,
    InvalidEnqueueOptionsError,
    NodeRegistry,
    NodeStatus,
    WorkflowEngine,
    WorkflowNotFoundError,
)
from spane_py.queue.jobs import NodeJob
from tests.integration._support import (
    Recorder,
    named_url,
    node,
    wait_blocked,
    wait_queue_empty,
    wait_until,
    wait_until_idle,
    workflow,
)
from tests.integration.conftest import EngineFactory


async def _tag(ctx: ExecutionContext) -> Any:
    return {"node": ctx.node_id, "input": ctx.input_data}


def _dump(state: Any) -> dict[str, Any]:
    return {n: r.model_dump() for n, r in state.node_results.items()}


async def test_redelivered_jobs_of_a_finished_execution_change_nothing(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(
        workflow("dup", node("a", "tag"), node("b", "tag", "a"), node("c", "tag", "a", "b"))
    )
    await engine.start_workers(4)
    eid = await engine.enqueue_workflow("dup", "x")
    before = await engine.wait_for_execution(eid, timeout=10)
    assert before.status is ExecutionStatus.COMPLETED
    await wait_queue_empty(engine)
    calls_before = len(rec.calls)
    assert calls_before == 3

    for node_id in ("a", "b", "c"):
        await engine.resend_node(eid, node_id)
    # The resent jobs have been consumed, with whatever they (wrongly) started.
    await wait_until_idle(engine)

    after = await engine.get_execution(eid)
    assert len(rec.calls) == calls_before  # no executor ran again
    assert after.status is ExecutionStatus.COMPLETED
    assert after.completed_at == before.completed_at
    assert _dump(after) == _dump(before)


async def test_redelivered_job_of_a_failed_execution_changes_nothing(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def broken(ctx: ExecutionContext) -> Any:
        raise RuntimeError("no")

    rec.register(registry, "broken", broken)
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(
        workflow("dup-failed", node("a", "broken"), node("b", "tag", "a"))
    )
    await engine.start_workers(2)
    before = await engine.run_workflow("dup-failed", timeout=10)
    assert before.status is ExecutionStatus.FAILED
    await wait_queue_empty(engine)

    await engine.resend_node(before.execution_id, "a")
    await wait_until_idle(engine)  # the resent job has been consumed

    after = await engine.get_execution(before.execution_id)
    assert len(rec.of("a")) == 1
    assert rec.of("b") == []
    assert after.status is ExecutionStatus.FAILED
    assert _dump(after) == _dump(before)


async def test_enqueueing_a_still_queued_node_job_again_is_a_no_op(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "tag", _tag)
    reg = await engine.register_workflow(workflow("dup-queued", node("a", "tag")))
    eid = await engine.enqueue_workflow("dup-queued", 1)  # no worker yet: the job waits
    stats = await engine.get_queue_stats()
    assert (stats.queued, stats.scheduled, stats.running) == (1, 0, 0)

    job = NodeJob(eid, "dup-queued", reg.version, "a")
    assert await engine.queue.enqueue([job]) == 0
    assert await engine.queue.enqueue([job, job]) == 0
    await engine.resend_node(eid, "a")
    assert (await engine.get_queue_stats()).queued == 1

    await engine.start_workers(2)
    state = await engine.wait_for_execution(eid, timeout=10)
    await wait_queue_empty(engine)
    assert state.status is ExecutionStatus.COMPLETED
    assert len(rec.of("a")) == 1
    assert state.node_results["a"].attempts == 1


async def test_duplicate_delivery_while_the_node_runs_does_not_run_it_twice(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def block(ctx: ExecutionContext) -> Any:
        entered.set()
        await release.wait()
        return "done"

    rec.register(registry, "block", block)
    await engine.register_workflow(workflow("dup-running", node("a", "block")))
    await engine.start_workers(4)
    eid = await engine.enqueue_workflow("dup-running")
    await asyncio.wait_for(entered.wait(), 5)

    await engine.resend_node(eid, "a")  # same job id: held by the running job

    async def only_the_first_delivery_left() -> bool:
        # A second delivery (wrongly) queued would be taken by an idle worker and would
        # either run (blocking, like the first: two running) or end; either way it is
        # settled once this holds.
        stats = await engine.get_queue_stats()
        return (stats.queued, stats.scheduled, stats.running) == (0, 0, 1)

    await wait_until(only_the_first_delivery_left, what="the resent job to be settled")
    release.set()
    state = await engine.wait_for_execution(eid, timeout=10)
    await wait_until_idle(engine)

    assert state.status is ExecutionStatus.COMPLETED
    assert len(rec.of("a")) == 1
    assert (await engine.get_execution(eid)).node_results["a"].attempts == 1


V1 = workflow("pinned", node("first", "gate"), node("v1_only", "tag", "first"))
V2 = workflow(
    "pinned",
    node("first", "gate"),
    node("v2_only", "tag", "first"),
    node("v2_last", "tag", "v2_only"),
)


async def test_running_execution_finishes_on_its_version_while_new_ones_use_the_latest(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def gate(ctx: ExecutionContext) -> Any:
        entered.set()
        await release.wait()
        return {"version": ctx.workflow_version}

    rec.register(registry, "gate", gate)
    rec.register(registry, "tag", _tag)
    r1 = await engine.register_workflow(V1)
    assert (r1.version, r1.created) == (1, True)
    await engine.start_workers(4)

    old = await engine.enqueue_workflow("pinned", "old")
    await asyncio.wait_for(entered.wait(), 5)  # v1's first node is running

    r2 = await engine.register_workflow(V2, change_notes="v2: new tail")
    assert (r2.version, r2.created) == (2, True)
    assert r2.content_hash != r1.content_hash
    release.set()

    old_state = await engine.wait_for_execution(old, timeout=10)
    assert old_state.status is ExecutionStatus.COMPLETED
    assert old_state.workflow_version == 1
    assert set(old_state.node_results) == {"first", "v1_only"}
    assert old_state.node_results["first"].data == {"version": 1}
    assert rec.of("v1_only", old) != []
    assert rec.of("v2_only", old) == []

    new = await engine.enqueue_workflow("pinned", "new")
    new_state = await engine.wait_for_execution(new, timeout=10)
    assert new_state.status is ExecutionStatus.COMPLETED
    assert new_state.workflow_version == 2
    assert set(new_state.node_results) == {"first", "v2_only", "v2_last"}
    assert new_state.node_results["first"].data == {"version": 2}
    assert rec.of("v1_only", new) == []

    # Both versions stay readable.
    assert [n.id for n in (await engine.get_workflow("pinned", 1)).nodes] == ["first", "v1_only"]
    assert [n.id for n in (await engine.get_workflow("pinned")).nodes] == [
        "first",
        "v2_only",
        "v2_last",
    ]


async def test_an_earlier_version_can_be_started_by_number(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def gate(ctx: ExecutionContext) -> Any:
        return {"version": ctx.workflow_version}

    rec.register(registry, "gate", gate)
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(V1)
    await engine.register_workflow(V2)
    await engine.start_workers(4)

    old = await engine.enqueue_workflow("pinned", "again", version=1)
    state = await engine.wait_for_execution(old, timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.workflow_version == 1
    assert set(state.node_results) == {"first", "v1_only"}
    for bad in (0, -1, True, "1"):
        with pytest.raises(InvalidEnqueueOptionsError, match="version must be a positive integer"):
            await engine.enqueue_workflow("pinned", None, version=bad)  # type: ignore[arg-type]
    with pytest.raises(WorkflowNotFoundError, match=r"has no version 3 \(the latest is 2\)"):
        await engine.enqueue_workflow("pinned", None, version=3)


async def test_registering_an_identical_definition_again_is_a_no_op(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    rec.register(registry, "gate", _tag)
    rec.register(registry, "tag", _tag)
    first = await engine.register_workflow(V1)
    again = await engine.register_workflow(V1)
    assert (again.version, again.created) == (first.version, False)
    assert again.content_hash == first.content_hash

    # The same graph written differently (outputs instead of inputs, camelCase) is identical.
    spelled_differently = {
        "id": "pinned",
        "name": "pinned",
        "nodes": [
            {"id": "first", "type": "gate", "outputs": ["v1_only"]},
            {"id": "v1_only", "type": "tag"},
        ],
    }
    third = await engine.register_workflow(spelled_differently)
    assert (third.version, third.created) == (first.version, False)

    changed = await engine.register_workflow(V2)
    assert (changed.version, changed.created) == (2, True)
    assert (await engine.register_workflow(V2)).version == 2
    assert await engine.store.get_workflow_count() == 1


async def test_workflow_cache_reports_hits_and_misses(
    engine: WorkflowEngine,
    registry: NodeRegistry,
    store: InMemoryExecutionStore,
    rec: Recorder,
    make_engine: EngineFactory,
) -> None:
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(
        workflow("cached", node("a", "tag"), node("b", "tag", "a"), node("c", "tag", "b"))
    )
    stats = engine.cache_stats()
    assert stats.size == 1
    assert stats.max_size == 500

    # A worker engine that never registered the workflow (another process, same store and
    # queue) loads it from the store once, then serves it from its cache.
    worker = await make_engine(registry, store, key_prefix=engine.key_prefix)
    assert worker.cache_stats().size == 0
    await worker.start_workers(4)
    for i in range(3):
        state = await engine.run_workflow("cached", i, timeout=10)
        assert state.status is ExecutionStatus.COMPLETED

    worker_stats = worker.cache_stats()
    assert worker_stats.misses == 1
    assert worker_stats.hits >= 8  # 9 node runs, the first one missed
    assert worker_stats.size == 1
    assert 0.8 < worker_stats.hit_rate < 1.0
    producer_stats = engine.cache_stats()
    assert producer_stats.misses == 0  # registering put the graph in the cache
    assert producer_stats.hits >= 3  # one per enqueue


async def test_a_node_id_unknown_to_the_pinned_version_is_dropped(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    """A stray job naming a node that the execution's version lacks runs nothing."""
    rec.register(registry, "gate", _tag)
    rec.register(registry, "tag", _tag)
    await engine.register_workflow(V1)
    await engine.start_workers(2)
    state = await engine.run_workflow("pinned", timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    calls = len(rec.calls)

    await engine.queue.enqueue([NodeJob(state.execution_id, "pinned", 1, "v2_only")])
    await wait_queue_empty(engine)

    async def unchanged() -> bool:
        return len(rec.calls) == calls

    await wait_until(unchanged, what="no new calls")
    after = await engine.get_execution(state.execution_id)
    assert "v2_only" not in after.node_results
    assert after.node_results["v1_only"].status is NodeStatus.SUCCEEDED


async def test_many_executions_on_two_workers_claim_each_join_exactly_once(
    engine: WorkflowEngine,
    registry: NodeRegistry,
    store: InMemoryExecutionStore,
    rec: Recorder,
    make_engine: EngineFactory,
) -> None:
    rec.register(registry, "tag", _tag)
    middle = [f"m{i}" for i in range(5)]
    await engine.register_workflow(
        workflow(
            "busy-diamond",
            node("a", "tag"),
            *(node(m, "tag", "a") for m in middle),
            node("join", "tag", *middle),
        )
    )
    second = await make_engine(registry, store, key_prefix=engine.key_prefix)
    await engine.start_workers(8)
    await second.start_workers(8)

    ids = [await engine.enqueue_workflow("busy-diamond", i) for i in range(40)]
    states = [await engine.wait_for_execution(eid, timeout=20) for eid in ids]

    assert all(s.status is ExecutionStatus.COMPLETED for s in states)
    for eid in ids:
        assert len(rec.of("join", eid)) == 1
        assert len(rec.of("a", eid)) == 1
    assert len(rec.calls) == 40 * 7
    assert {s.node_results["join"].data["input"]["m0"]["input"]["input"] for s in states} == set(
        range(40)
    )


async def test_a_hop_costs_far_less_than_the_poll_delay(
    registry: NodeRegistry, rec: Recorder, redis_url: str, key_prefix: str
) -> None:
    """Workers are woken when work arrives: a 30-node chain with a 1 s poll delay would
    take 30 s if each hop waited for a poll; it takes far less than 5 polls."""
    poll_delay = 1.0

    async def inc(ctx: ExecutionContext) -> int:
        return int(ctx.input_data) + 1

    rec.register(registry, "inc", inc)
    name = f"spane-hops-{key_prefix}"
    engine = WorkflowEngine(
        registry, redis_url=named_url(redis_url, name), key_prefix=key_prefix, poll_delay=poll_delay
    )
    async with engine:
        chain = [node("n0", "inc")] + [node(f"n{i}", "inc", f"n{i - 1}") for i in range(1, 30)]
        await engine.register_workflow(workflow("long-chain", *chain))
        await engine.start_workers(4)
        await wait_blocked(redis_url, name)  # the worker is idle, blocked waiting for work

        started = time.monotonic()
        state = await engine.run_workflow("long-chain", 0, timeout=60)
        elapsed = time.monotonic() - started
        await engine.purge()

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n29"].data == 30
    assert elapsed < 5 * poll_delay, f"{elapsed:.2f} s for 30 hops"
