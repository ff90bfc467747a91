"""Issue 4 end to end on both stores: sub-workflows, delays, waits, maps, pause/resume/cancel,
retry, replay, the dead-letter queue, max_concurrency and schedule_workflow."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, SkippingClock, WorkflowEngine
from spane_py.errors import (
    DlqItemNotFoundError,
    ExecutionNotFoundError,
    InvalidEnqueueOptionsError,
    InvalidExecutionStateError,
    ResumeTokenError,
    WorkflowValidationError,
)
from tests.integration._support import Recorder, node, wait_until, wait_until_idle, workflow
from tests.integration.conftest import EngineFactory, StoreFactory


@pytest.fixture
def reg(rec: Recorder) -> NodeRegistry:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> Any:
        return ctx.input_data

    async def inc(ctx: ExecutionContext) -> Any:
        return (ctx.input_data or 0) + 1

    async def double(ctx: ExecutionContext) -> Any:
        return ctx.input_data * 2

    async def boom(ctx: ExecutionContext) -> Any:
        raise RuntimeError("boom")

    rec.register(registry, "echo", echo)
    rec.register(registry, "inc", inc)
    rec.register(registry, "double", double)
    rec.register(registry, "boom", boom)
    return registry


@pytest.fixture
async def engine(
    new_store: StoreFactory, make_engine: EngineFactory, reg: NodeRegistry
) -> WorkflowEngine:
    # new_store first: torn down last, so the schema outlives the engine's workers.
    eng = await make_engine(reg, new_store(), sweep_interval_seconds=0.5, stale_after_seconds=2)
    await eng.start_workers(20)
    return eng


async def until(predicate: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    await wait_until(predicate, timeout=timeout)


# Sub-workflows -----------------------------------------------------------------------------


async def test_sub_workflow_output_flows_downstream(engine: WorkflowEngine, rec: Recorder) -> None:
    await engine.register_workflow(workflow("child", node("x", "inc"), node("y", "double", "x")))
    await engine.register_workflow(workflow("echo-child", node("x", "echo")))
    await engine.register_workflow(
        workflow(
            "mapped",
            node(
                "call",
                "sub-workflow",
                config={
                    "workflowId": "echo-child",
                    "inputMapping": {"n": "order.value", "first": "order.items.0"},
                    "outputMapping": {"got": "n"},
                },
            ),
        )
    )
    await engine.register_workflow(
        workflow(
            "parent2",
            node("a", "echo"),
            node("call", "sub-workflow", "a", config={"workflowId": "child"}),
            node("after", "inc", "call"),
        )
    )
    state = await engine.run_workflow("parent2", 3, timeout=20)
    assert state.status == "completed"
    assert state.node_results["call"].data == 8  # (3 + 1) * 2
    assert state.node_results["after"].data == 9  # downstream of the sub-workflow ran
    children = await engine.store.get_child_executions(state.execution_id)
    assert len(children) == 1
    child = children[0]
    assert child.workflow_id == "child"
    assert child.depth == 1
    assert child.parent_node_id == "call"
    assert child.status == "completed"
    parent = await engine.store.get_parent_execution(child.execution_id)
    assert parent is not None
    assert parent.execution_id == state.execution_id

    # Mappings: {target: dotted source}, into the child and out of it.
    mapped = await engine.run_workflow(
        "mapped", {"order": {"value": 3, "items": ["x", "y"]}}, timeout=20
    )
    assert mapped.status == "completed"
    assert mapped.node_results["call"].data == {"got": 3}
    child_input = (await engine.store.get_child_executions(mapped.execution_id))[0].initial_data
    assert child_input == '{"n":3,"first":"x"}' or '"first": "x"' in child_input


async def test_failing_child_fails_the_parent_unless_continue_on_fail(
    engine: WorkflowEngine, rec: Recorder
) -> None:
    await engine.register_workflow(workflow("bad-child", node("x", "boom")))
    await engine.register_workflow(
        workflow(
            "strict",
            node("call", "sub-workflow", config={"workflowId": "bad-child"}),
            node("after", "echo", "call"),
        )
    )
    await engine.register_workflow(
        workflow(
            "lenient",
            node(
                "call",
                "sub-workflow",
                config={"workflowId": "bad-child", "continueOnFail": True},
            ),
            node("after", "echo", "call"),
        )
    )
    strict = await engine.run_workflow("strict", None, timeout=20)
    assert strict.status == "failed"
    assert strict.node_results["call"].status == "failed"
    assert "boom" in (strict.node_results["call"].error or "")
    assert rec.of("after", strict.execution_id) == []

    lenient = await engine.run_workflow("lenient", None, timeout=20)
    assert lenient.status == "completed"
    data = lenient.node_results["after"].data
    assert data["continued_on_fail"] is True
    assert "boom" in data["error"]


async def test_three_levels_of_nesting_and_output_mapping(engine: WorkflowEngine) -> None:
    await engine.register_workflow(workflow("level3", node("x", "inc")))
    await engine.register_workflow(
        workflow(
            "level2",
            node("call", "sub-workflow", config={"workflowId": "level3"}),
            node("y", "double", "call"),
        )
    )
    await engine.register_workflow(
        workflow(
            "level1",
            node("call", "sub-workflow", config={"workflow_id": "level2"}),
            node("z", "inc", "call"),
            node(
                "wrapped",
                "sub-workflow",
                "z",
                config={"workflowId": "level3", "outputMapping": {"result": ""}},
            ),
        )
    )
    state = await engine.run_workflow("level1", 1, timeout=30)
    assert state.status == "completed"
    assert state.node_results["call"].data == 4  # (1 + 1) * 2
    assert state.node_results["z"].data == 5
    assert state.node_results["wrapped"].data == {"result": 6}
    level2 = next(
        c
        for c in await engine.store.get_child_executions(state.execution_id)
        if c.workflow_id == "level2"
    )
    level3 = await engine.store.get_child_executions(level2.execution_id)
    assert [c.depth for c in level3] == [2]


async def test_depth_limit_is_checked_before_creating_anything(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow("forever", node("again", "sub-workflow", config={"workflowId": "forever"}))
    )
    top = await engine.enqueue_workflow("forever")
    state = await engine.wait_for_execution(top, timeout=30)
    assert state.status == "failed"
    assert await engine.store.get_execution_count(workflow_id="forever") == 11  # depth 0..10
    deepest = top
    for _ in range(10):
        children = await engine.store.get_child_executions(deepest)
        assert len(children) == 1
        deepest = children[0].execution_id
    last = await engine.get_execution(deepest)
    assert last.depth == 10
    assert "nest at most 10 deep" in (last.node_results["again"].error or "")
    assert last.node_results["again"].attempts == 1  # not retried: retrying cannot fix it


async def test_unknown_child_workflow_fails_the_node(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow("orphan", node("call", "sub-workflow", config={"workflowId": "nope"}))
    )
    state = await engine.run_workflow("orphan", timeout=20)
    assert state.status == "failed"
    assert "'nope' is not registered" in (state.node_results["call"].error or "")
    assert await engine.store.get_child_executions(state.execution_id) == []


# Delays --------------------------------------------------------------------------------------


async def test_delay_node_waits_without_a_worker_and_passes_data_on(
    engine: WorkflowEngine, rec: Recorder
) -> None:
    await engine.register_workflow(
        workflow(
            "sleepy",
            node("a", "inc"),
            node("pause", "delay", "a", config={"durationSeconds": 2}),
            node("b", "inc", "pause"),
        )
    )
    begun = time.monotonic()
    eid = await engine.enqueue_workflow("sleepy", 1)
    await until(lambda: _node_status(engine, eid, "pause", "waiting"))

    async def parked() -> bool:
        # The store says "waiting" a moment before the worker's Redis call moves the job
        # from its slot to the scheduled set.
        stats = await engine.get_queue_stats()
        return stats.running == 0 and stats.scheduled == 1  # no worker held; due later

    await until(parked)
    state = await engine.wait_for_execution(eid, timeout=20)
    assert state.status == "completed"
    assert state.node_results["b"].data == 3
    assert state.node_results["pause"].data == 2
    a_done = rec.of("a", eid)[0].at
    assert rec.of("b", eid)[0].at - a_done >= 1.95
    assert time.monotonic() - begun < 20


async def test_delay_precedence_zero_and_bad_configs(engine: WorkflowEngine) -> None:
    await engine.register_workflow(
        workflow(
            "zero",
            node("d", "delay", config={"duration": 0, "durationSeconds": 99}),
            node("b", "inc", "d"),
        )
    )
    state = await engine.run_workflow("zero", 1, timeout=10)  # duration (ms) wins: 0
    assert state.node_results["b"].data == 2
    for bad, message in [
        ({"durationSeconds": -1}, "must be a finite number >= 0"),
        ({}, "needs duration"),
        ({"duration": "soon"}, "valid number"),
        ({"seconds": 3}, "Extra inputs"),
    ]:
        with pytest.raises(WorkflowValidationError, match=message):
            await engine.register_workflow(workflow("bad-delay", node("d", "delay", config=bad)))


# Waits and resume tokens ---------------------------------------------------------------------


async def test_approval_resumes_once_with_its_token(engine: WorkflowEngine, rec: Recorder) -> None:
    await engine.register_workflow(
        workflow(
            "approval",
            node("ask", "echo"),
            node("approve", "wait", "ask"),
            node("act", "echo", "approve"),
        )
    )
    eid = await engine.enqueue_workflow("approval", {"amount": 5})
    await until(lambda: _node_status(engine, eid, "approve", "waiting"))
    tokens = await engine.list_resume_tokens(eid)
    assert len(tokens) == 1
    token = tokens[0].token
    assert len(token) >= 40
    assert (await engine.validate_resume_token(token)).node_id == "approve"

    async def no_worker_held() -> bool:  # the job's end follows the store's "waiting"
        return (await engine.get_queue_stats()).running == 0

    await until(no_worker_held)

    assert await engine.resume(token, {"approved": True}) == eid
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "completed"
    assert state.node_results["act"].data == {"approved": True}

    with pytest.raises(ResumeTokenError) as second:
        await engine.resume(token, {"approved": False})
    assert second.value.details["reason"] == "used"
    with pytest.raises(ResumeTokenError) as unknown:
        await engine.resume("not-a-token", None)
    assert unknown.value.details["reason"] == "unknown"
    assert await engine.list_resume_tokens(eid) == []
    assert len(await engine.list_resume_tokens(eid, active_only=False)) == 1
    assert len(rec.of("act", eid)) == 1


async def test_revoked_token_and_wait_timeouts(engine: WorkflowEngine, rec: Recorder) -> None:
    await engine.register_workflow(
        workflow("gate", node("approve", "wait"), node("act", "echo", "approve"))
    )
    await engine.register_workflow(
        workflow(
            "gate-fail",
            node("approve", "wait", config={"timeoutSeconds": 0.5}),
            node("act", "echo", "approve"),
        )
    )
    await engine.register_workflow(
        workflow(
            "gate-default",
            node(
                "approve",
                "wait",
                config={"timeout": 500, "onTimeout": "continue", "defaultOutput": "auto"},
            ),
            node("act", "echo", "approve"),
        )
    )
    eid = await engine.enqueue_workflow("gate")
    await until(lambda: _node_status(engine, eid, "approve", "waiting"))
    token = (await engine.list_resume_tokens(eid))[0].token
    assert await engine.revoke_resume_token(token) is True
    with pytest.raises(ResumeTokenError) as revoked:
        await engine.resume(token, 1)
    assert revoked.value.details["reason"] == "revoked"
    assert (await engine.get_execution(eid)).status == "running"  # state unchanged

    failed = await engine.run_workflow("gate-fail", timeout=10)
    assert failed.status == "failed"
    assert "not resumed within 0.5 s" in (failed.node_results["approve"].error or "")
    expired = (await engine.list_resume_tokens(failed.execution_id, active_only=False))[0]
    with pytest.raises(ResumeTokenError) as late:
        await engine.resume(expired.token, 1)
    assert late.value.details["reason"] in ("expired", "not_waiting")

    defaulted = await engine.run_workflow("gate-default", timeout=10)
    assert defaulted.status == "completed"
    assert defaulted.node_results["act"].data == "auto"


# Map -----------------------------------------------------------------------------------------


async def test_map_runs_items_in_parallel_under_a_cap(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    running = 0
    peak = 0

    async def slow_square(ctx: ExecutionContext) -> int:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await asyncio.sleep(0.05)
        running -= 1
        if ctx.input_data == 13:
            raise ValueError("unlucky")
        return int(ctx.input_data) ** 2

    reg.register("square", slow_square)
    await engine.register_workflow(
        workflow(
            "squares",
            node(
                "each",
                "map",
                config={"nodeType": "square", "items": "numbers", "concurrency": 3},
            ),
        )
    )
    await engine.register_workflow(
        workflow(
            "squares-collect",
            node("each", "map", config={"nodeType": "square", "onItemError": "collect"}),
        )
    )
    state = await engine.run_workflow("squares", {"numbers": list(range(10))}, timeout=20)
    assert state.status == "completed"
    assert state.node_results["each"].data == [i * i for i in range(10)]
    assert peak == 3

    collected = await engine.run_workflow("squares-collect", [2, 13, 4], timeout=20)
    assert collected.node_results["each"].data[0] == 4
    assert collected.node_results["each"].data[2] == 16
    assert "unlucky" in collected.node_results["each"].data[1]["error"]

    failed = await engine.run_workflow("squares", {"numbers": [1, 13]}, timeout=20)
    assert failed.status == "failed"
    assert "item 1 failed" in (failed.node_results["each"].error or "")
    not_a_list = await engine.run_workflow("squares", {"numbers": 7}, timeout=20)
    assert "needs a list" in (not_a_list.node_results["each"].error or "")
    with pytest.raises(WorkflowValidationError, match="no registered executor"):
        await engine.register_workflow(
            workflow("bad-map", node("m", "map", config={"nodeType": "missing"}))
        )


# Pause, resume, cancel -----------------------------------------------------------------------


async def test_pause_and_resume_a_20_node_chain_runs_every_node_once(
    engine: WorkflowEngine, reg: NodeRegistry, rec: Recorder
) -> None:
    gate = asyncio.Event()

    async def step(ctx: ExecutionContext) -> int:
        if ctx.node_id == "n5":
            await gate.wait()  # the pause lands while this node runs
        return (ctx.input_data or 0) + 1

    rec.register(reg, "step", step)
    nodes = [node("n0", "step")] + [node(f"n{i}", "step", f"n{i - 1}") for i in range(1, 20)]
    await engine.register_workflow(workflow("chain20", *nodes))
    eid = await engine.enqueue_workflow("chain20", 0)
    await until(lambda: _called(rec, "n5", eid))
    assert await engine.pause_execution(eid) is True
    assert await engine.pause_execution(eid) is False  # paused already
    gate.set()
    await until(lambda: _node_status(engine, eid, "n5", "succeeded"))
    # n5's job has ended: a job it (wrongly) sent for n6 would be in the queue, or would
    # have run and sent n7's, and so on; none is left, and no execution is running.
    await wait_until_idle(engine)
    state = await engine.get_execution(eid)
    assert state.status == "paused"
    assert state.node_results["n6"].status == "queued"  # claimed, not started
    assert rec.nodes(eid) == [f"n{i}" for i in range(6)]

    assert await engine.resume_execution(eid) is True
    final = await engine.wait_for_execution(eid, timeout=20)
    assert final.status == "completed"
    assert final.node_results["n19"].data == 20
    assert rec.nodes(eid) == [f"n{i}" for i in range(20)]  # each exactly once, in order


async def test_pause_does_not_fire_a_delay_early(engine: WorkflowEngine, rec: Recorder) -> None:
    await engine.register_workflow(
        workflow(
            "sleepy2",
            node("pause", "delay", config={"durationSeconds": 2}),
            node("b", "inc", "pause"),
        )
    )
    eid = await engine.enqueue_workflow("sleepy2", 1)
    await until(lambda: _node_status(engine, eid, "pause", "waiting"))
    begun = time.monotonic()
    await engine.pause_execution(eid)
    await engine.resume_execution(eid)
    state = await engine.wait_for_execution(eid, timeout=20)
    assert state.status == "completed"
    assert time.monotonic() - begun >= 1.7  # the timer kept its due time
    assert len(rec.of("b", eid)) == 1


async def test_cancel_stops_running_nodes_through_the_context(
    engine: WorkflowEngine, reg: NodeRegistry, rec: Recorder
) -> None:
    saw_cancel = asyncio.Event()

    async def patient(ctx: ExecutionContext) -> str:
        await ctx.cancelled()
        assert ctx.is_cancelled
        saw_cancel.set()
        return "stopped cleanly"

    reg.register("patient", patient)
    await engine.register_workflow(
        workflow("stoppable", node("a", "patient"), node("b", "echo", "a"))
    )
    eid = await engine.enqueue_workflow("stoppable")
    await until(lambda: _node_status(engine, eid, "a", "running"))
    assert await engine.cancel_execution(eid, "operator said so") is True
    await asyncio.wait_for(saw_cancel.wait(), 5)
    state = await engine.wait_for_execution(eid, timeout=5)
    assert state.status == "cancelled"
    assert state.error == "operator said so"
    # a's job has ended (its result came after the cancel) and what it sent has run.
    await wait_until_idle(engine)
    state = await engine.get_execution(eid)
    assert state.status == "cancelled"  # never completed afterwards
    assert state.node_results["a"].status == "cancelled"
    assert rec.of("b", eid) == []
    assert await engine.cancel_execution(eid) is False


async def test_cancel_reaches_sub_workflows_and_bad_control_inputs(engine: WorkflowEngine) -> None:
    await engine.register_workflow(workflow("waits", node("w", "wait")))
    await engine.register_workflow(
        workflow("calls", node("call", "sub-workflow", config={"workflowId": "waits"}))
    )
    eid = await engine.enqueue_workflow("calls")

    async def child_waiting() -> bool:
        kids = await engine.store.get_child_executions(eid)
        return bool(kids) and await _node_status(engine, kids[0].execution_id, "w", "waiting")

    await until(child_waiting)
    await engine.cancel_execution(eid)
    kid = (await engine.store.get_child_executions(eid))[0]
    assert (await engine.get_execution(kid.execution_id)).status == "cancelled"

    with pytest.raises(InvalidExecutionStateError, match="cancelled"):
        await engine.pause_execution(eid)
    with pytest.raises(InvalidExecutionStateError, match="only a failed execution"):
        await engine.retry_execution(eid)
    with pytest.raises(ExecutionNotFoundError):
        await engine.resume_execution("00000000-0000-7000-8000-000000000000")

    await engine.register_workflow(workflow("quick", node("a", "echo")))
    done = await engine.run_workflow("quick", 1, timeout=10)
    with pytest.raises(InvalidExecutionStateError, match="completed"):
        await engine.pause_execution(done.execution_id)
    with pytest.raises(InvalidExecutionStateError, match="only a paused"):
        await engine.resume_execution(done.execution_id)
    assert (await engine.get_execution(done.execution_id)).status == "completed"


async def test_bulk_pause_resume_and_cancel(engine: WorkflowEngine, reg: NodeRegistry) -> None:
    gate = asyncio.Event()

    async def held(ctx: ExecutionContext) -> int:
        await gate.wait()
        return 1

    reg.register("held", held)
    await engine.register_workflow(workflow("bulk", node("a", "held"), node("b", "echo", "a")))
    ids = await engine.enqueue_bulk("bulk", [None] * 30)
    paused = await engine.pause_executions(ids)
    assert sorted(paused.changed) == sorted(ids)
    gate.set()
    # Every job of a has ended (run, or found its execution paused), b's sent by none.
    await wait_until_idle(engine)
    assert await engine.store.get_execution_count(workflow_id="bulk", status="paused") == 30
    cancelled = await engine.cancel_executions(ids[:5])
    assert len(cancelled.changed) == 5
    resumed = await engine.resume_executions(ids)
    assert sorted(resumed.changed) == sorted(ids[5:])
    assert set(resumed.errors) == set(ids[:5])
    for eid in ids[5:]:
        assert (await engine.wait_for_execution(eid, timeout=20)).status == "completed"


# Retry, replay, dead letters -------------------------------------------------------------------


async def test_retry_execution_reruns_only_the_failed_branch(
    engine: WorkflowEngine, reg: NodeRegistry, rec: Recorder
) -> None:
    broken = {"on": True}

    async def flaky(ctx: ExecutionContext) -> int:
        if broken["on"]:
            raise RuntimeError("downstream service is down")
        return 10

    async def total(ctx: ExecutionContext) -> int:
        return sum(ctx.input_data.values())

    rec.register(reg, "flaky", flaky)
    rec.register(reg, "total", total)
    await engine.register_workflow(
        workflow(
            "repair",
            node("a", "inc"),
            node("b", "flaky", "a"),
            node("c", "inc", "a"),
            node("d", "total", "b", "c"),
        )
    )
    eid = await engine.enqueue_workflow("repair", 0)
    failed = await engine.wait_for_execution(eid, timeout=10)
    assert failed.status == "failed"
    await until(lambda: _node_status(engine, eid, "c", "succeeded"))
    with pytest.raises(InvalidExecutionStateError):
        await engine.resume_execution(eid)

    broken["on"] = False
    await engine.retry_execution(eid)
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "completed"
    assert state.node_results["d"].data == 12  # b: 10, c: 2
    assert len(rec.of("a", eid)) == 1
    assert len(rec.of("c", eid)) == 1
    assert len(rec.of("b", eid)) == 2
    assert len(rec.of("d", eid)) == 1
    with pytest.raises(InvalidExecutionStateError, match="only a failed"):
        await engine.retry_execution(eid)


async def test_replay_starts_a_new_execution_with_the_same_input(engine: WorkflowEngine) -> None:
    await engine.register_workflow(workflow("again", node("a", "inc")))
    first = await engine.run_workflow("again", 41, timeout=10)
    new_id = await engine.replay_execution(first.execution_id)
    assert new_id != first.execution_id
    replayed = await engine.wait_for_execution(new_id, timeout=10)
    assert replayed.node_results["a"].data == 42
    assert replayed.metadata["replayed_from"] == first.execution_id
    assert replayed.workflow_version == first.workflow_version


async def test_dead_letter_items_record_failures_and_can_be_retried(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    broken = {"on": True}

    async def fragile(ctx: ExecutionContext) -> str:
        if broken["on"]:
            raise ConnectionError("refused")
        return "ok"

    reg.register("fragile", fragile)
    await engine.register_workflow(
        workflow(
            "dlq",
            node(
                "f",
                "fragile",
                retry_policy={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}},
            ),
            node("g", "echo", "f"),
        )
    )
    state = await engine.run_workflow("dlq", timeout=10)
    assert state.status == "failed"
    items = await engine.get_dlq_items()
    assert len(items) == 1
    item = items[0]
    assert (item.execution_id, item.node_id, item.attempts) == (state.execution_id, "f", 2)
    assert "ConnectionError: refused" in item.error
    assert item.traceback is not None
    assert "ConnectionError" in item.traceback
    assert item.job["n"] == "f"

    broken["on"] = False
    assert item.dlq_id is not None
    await engine.retry_dlq_item(item.dlq_id)
    retried = await engine.wait_for_execution(state.execution_id, timeout=10)
    assert retried.status == "completed"
    assert retried.node_results["g"].data == "ok"
    assert await engine.get_dlq_items() == []
    with pytest.raises(InvalidExecutionStateError, match="was retried"):
        await engine.retry_dlq_item(item.dlq_id)
    with pytest.raises(DlqItemNotFoundError):
        await engine.retry_dlq_item(987654)
    assert len(await engine.get_dlq_items(include_retried=True)) == 1
    assert await engine.purge_dlq() == 1


# Admission and scheduling ------------------------------------------------------------------------


async def test_max_concurrency_queues_executions_and_starts_them_in_order(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    running = 0
    peak = 0
    started: list[Any] = []
    gate = asyncio.Event()

    async def work(ctx: ExecutionContext) -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        started.append(ctx.input_data)
        await gate.wait()  # the first two hold their slots until the count below
        running -= 1

    reg.register("work", work)
    await engine.register_workflow(workflow("limited", node("a", "work"), max_concurrency=2))
    ids = [await engine.enqueue_workflow("limited", i) for i in range(6)]

    async def two_started() -> bool:
        return len(started) == 2

    await until(two_started)
    queued = await engine.store.get_execution_count(workflow_id="limited", status="queued")
    assert queued == 4  # both slots are held: the others wait for one
    assert sorted(started) == [0, 1]
    gate.set()
    states = [await engine.wait_for_execution(eid, timeout=20) for eid in ids]
    assert all(s.status == "completed" for s in states)
    assert peak == 2
    assert sorted(started) == list(range(6))
    # First in, first admitted: executions admitted together may start in either order.
    admitted = [s.started_at for s in states]
    assert admitted == sorted(admitted)


async def test_schedule_workflow_starts_at_the_given_time(engine: WorkflowEngine) -> None:
    await engine.register_workflow(workflow("later", node("a", "inc")))
    at = datetime.now(UTC) + timedelta(seconds=1)
    eid = await engine.schedule_workflow("later", 1, at)
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.node_results["a"].data == 2
    started = state.node_results["a"].started_at
    assert started is not None
    assert started >= at - timedelta(milliseconds=50)
    with pytest.raises(InvalidEnqueueOptionsError, match="timezone-aware"):
        await engine.schedule_workflow("later", 1, datetime.now())
    with pytest.raises(InvalidEnqueueOptionsError, match="priority"):
        await engine.enqueue_workflow("later", 1, priority=11)


async def test_many_paused_executions_resume(engine: WorkflowEngine, reg: NodeRegistry) -> None:
    await engine.register_workflow(
        workflow("parked", node("d", "delay", config={"duration": 300}), node("b", "inc", "d"))
    )
    ids = await engine.enqueue_bulk("parked", list(range(200)))
    result = await engine.pause_executions(ids)
    assert len(result.changed) + len(result.unchanged) == 200
    # Every delay's job has come due (300 ms) and found its execution paused, or was
    # claimed after the pause: nothing is queued, scheduled or running.
    await wait_until_idle(engine, timeout=30)
    assert await engine.store.get_execution_count(workflow_id="parked", status="paused") == 200
    resumed = await engine.resume_executions(ids)
    assert len(resumed.changed) == 200
    for eid in ids:
        assert (await engine.wait_for_execution(eid, timeout=30)).status == "completed"


# helpers -----------------------------------------------------------------------------------------


async def _node_status(engine: WorkflowEngine, eid: str, node_id: str, status: str) -> bool:
    state = await engine.get_execution(eid)
    result = state.node_results.get(node_id)
    return result is not None and result.status == status


async def _called(rec: Recorder, node_id: str, eid: str) -> bool:
    return bool(rec.of(node_id, eid))


async def test_idempotency_key_holds_within_its_ttl(
    new_store: StoreFactory, make_engine: EngineFactory, reg: NodeRegistry
) -> None:
    clock = SkippingClock()
    eng = await make_engine(reg, new_store(), idempotency_ttl_seconds=3600, clock=clock)
    await eng.register_workflow(workflow("once", node("a", "inc")))
    first = await eng.enqueue_workflow("once", 1, idempotency_key="order-7")
    assert await eng.enqueue_workflow("once", 2, idempotency_key="order-7") == first
    clock.skip(3599)
    assert await eng.enqueue_workflow("once", 2, idempotency_key="order-7") == first
    clock.skip(2)  # the key is older than its TTL on the engine's clock
    later = await eng.enqueue_workflow("once", 3, idempotency_key="order-7")
    assert later != first
    assert await eng.enqueue_workflow("once", 4, idempotency_key="order-7") == later
    assert await eng.store.get_execution_count(workflow_id="once") == 2


# Execution timeouts (issue 6) --------------------------------------------------------------------


async def test_execution_timeout_fails_the_execution_and_stops_its_nodes(
    engine: WorkflowEngine, reg: NodeRegistry, rec: Recorder
) -> None:
    stopped = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            stopped.set()
            raise
        return "too late"

    reg.register("slow", slow)
    await engine.register_workflow(
        workflow("bounded", node("a", "slow"), node("b", "echo", "a"), timeout=500)
    )
    await engine.register_workflow(workflow("quick-bounded", node("a", "inc"), timeout=60_000))
    begun = time.monotonic()
    state = await engine.run_workflow("bounded", timeout=10)
    assert state.status == "failed"
    assert (state.error or "").startswith("ExecutionTimeoutError: the execution ran past its")
    assert 0.45 <= time.monotonic() - begun < 5
    assert state.node_results["a"].status == "cancelled"
    await asyncio.wait_for(stopped.wait(), 5)  # the running node was cancelled
    assert rec.of("b", state.execution_id) == []

    quick = await engine.run_workflow("quick-bounded", 1, timeout=10)
    assert quick.status == "completed"
    # The finished execution's deadline job was taken out of the queue.
    await until(lambda: _queue_idle(engine))


async def _queue_idle(engine: WorkflowEngine) -> bool:
    stats = await engine.get_queue_stats()
    return stats.scheduled == 0 and stats.queued == 0


async def test_the_sweeper_sends_a_lost_deadline_job_again(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    from spane_py.queue.jobs import DeadlineJob

    async def hold(ctx: ExecutionContext) -> None:
        await asyncio.sleep(30)

    reg.register("hold", hold)
    await engine.register_workflow(workflow("lost-deadline", node("a", "hold"), timeout=1500))
    eid = await engine.enqueue_workflow("lost-deadline")
    deadline = DeadlineJob(eid, "lost-deadline", 1)
    await engine.queue.remove([engine.queue.job_id(deadline)])  # as if Redis lost it
    await until(lambda: _node_status(engine, eid, "a", "running"))
    await engine.sweep(older_than=datetime.now(UTC) + timedelta(seconds=5))
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "failed"
    assert (state.error or "").startswith("ExecutionTimeoutError")


# Crash loops (issue 6) ---------------------------------------------------------------------------


async def test_a_node_that_keeps_losing_its_worker_fails_instead_of_looping(
    engine: WorkflowEngine, reg: NodeRegistry, rec: Recorder
) -> None:
    from spane_py.queue.jobs import NodeJob

    await engine.register_workflow(workflow("doomed", node("a", "echo"), node("b", "echo", "a")))
    await engine.stop_workers()
    eid = await engine.enqueue_workflow("doomed", 1)
    job_id = engine.queue.job_id(NodeJob(eid, "doomed", 1, "a"))
    # Six workers lost while it ran alone (what a node that kills its process leaves behind):
    # each time, a worker with nothing else running claims it and its lease runs out.
    await engine.queue.claim("dead-0", 1, lease_ms=1)
    for i in range(6):
        await asyncio.sleep(0.005)
        claim = await engine.queue.claim(f"dead-{i + 1}", 1, lease_ms=1, idle=True)
        assert [(j.job_id, j.solo, j.lost) for j in claim.jobs] == [(job_id, True, i)]
    await asyncio.sleep(0.005)
    await engine.start_workers(4)
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "failed"
    assert "lost its worker 6 times in a row" in (state.node_results["a"].error or "")
    assert rec.of("a", eid) == []  # not run a seventh time
    assert [i.node_id for i in await engine.get_dlq_items()] == ["a"]


async def test_retries_and_deferrals_do_not_count_as_lost_deliveries(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    calls = {"n": 0}

    async def shaky(ctx: ExecutionContext) -> int:
        calls["n"] += 1
        if calls["n"] < 8:
            raise RuntimeError("not yet")
        return calls["n"]

    reg.register("shaky", shaky)
    await engine.register_workflow(
        workflow(
            "patient",
            node(
                "a",
                "shaky",
                retry_policy={"maxAttempts": 10, "backoff": {"type": "fixed", "delay": 1}},
            ),
        )
    )
    state = await engine.run_workflow("patient", timeout=15)
    assert state.status == "completed"
    assert state.node_results["a"].data == 8
    assert state.node_results["a"].attempts == 8


# Traces (issue 7) --------------------------------------------------------------------------------


async def test_get_trace_holds_nodes_spans_logs_and_children(
    engine: WorkflowEngine, reg: NodeRegistry
) -> None:
    async def chatty(ctx: ExecutionContext) -> int:
        ctx.log("info", "working", item=ctx.input_data)
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return 7

    reg.register("chatty", chatty)
    await engine.register_workflow(workflow("kid", node("k", "inc")))
    await engine.register_workflow(
        workflow(
            "traced",
            node(
                "a",
                "chatty",
                retry_policy={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 1}},
            ),
            node("call", "sub-workflow", "a", config={"workflowId": "kid"}),
        )
    )
    state = await engine.run_workflow("traced", 3, timeout=20)
    assert state.status == "completed"
    trace = await engine.get_trace(state.execution_id)
    assert trace.execution.execution_id == state.execution_id
    a_spans = [s for s in trace.spans if s.node_id == "a"]
    assert [(s.attempt, s.status) for s in a_spans] == [(1, "retrying"), (2, "succeeded")]
    assert "first try fails" in (a_spans[0].error or "")
    assert a_spans[0].traceback is not None
    assert all(s.worker_id and s.duration_ms is not None for s in a_spans)
    assert [(line.node_id, line.message, line.fields.get("item")) for line in trace.logs] == [
        ("a", "working", 3),
        ("a", "working", 3),
    ]
    assert [c.workflow_id for c in trace.children] == ["kid"]
    assert trace.children[0].node_results["k"].data == 8
