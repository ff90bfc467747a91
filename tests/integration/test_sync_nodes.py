"""Plain ``def`` node executors through real workers: they run on the node thread pool, so the
event loop, and every async node of the worker, goes on while they block."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from spane_py import (
    ConfigurationError,
    ExecutionContext,
    ExecutionResult,
    ExecutionStatus,
    NodeRegistry,
    NodeStatus,
    NonRetryableError,
    WorkflowEngine,
    success_result,
)
from spane_py.dsl import Workflow
from tests.integration._support import Recorder, node, wait_until_idle, workflow

FANOUT = 12


def fixed(max_attempts: int, delay_ms: int = 10) -> dict[str, Any]:
    return {"max_attempts": max_attempts, "backoff": {"type": "fixed", "delay": delay_ms}}


async def _async_ok(ctx: ExecutionContext) -> Any:
    await asyncio.sleep(0)
    return ctx.node_id


async def wait_event(event: threading.Event) -> None:
    """Until ``event`` is set by a node's thread (waits on a thread, not on the loop)."""
    assert await asyncio.to_thread(event.wait, 10), "the node's thread never got there"


async def test_async_nodes_run_while_a_def_node_blocks_its_thread(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    entered, release = threading.Event(), threading.Event()
    threads_seen: list[str] = []

    def blocking(ctx: ExecutionContext) -> str:
        rec.record(ctx)
        threads_seen.append(threading.current_thread().name)
        entered.set()
        # Released only once the other execution, all async nodes, has completed: were this
        # running on the event loop, that execution could never progress.
        assert release.wait(10), "never released"
        time.sleep(0.2)
        return "slept"

    registry.register("blocking", blocking)
    rec.register(registry, "async", _async_ok)
    await engine.register_workflow(workflow("sleeper", node("sleep", "blocking")))
    await engine.register_workflow(
        workflow(
            "fanout",
            node("start", "async"),
            *(node(f"leaf{i}", "async", "start") for i in range(FANOUT)),
            node("join", "async", *(f"leaf{i}" for i in range(FANOUT))),
        )
    )
    await engine.start_workers(4)
    try:
        sleeper = await engine.enqueue_workflow("sleeper")
        await wait_event(entered)
        state = await engine.run_workflow("fanout", timeout=10)

        assert state.status is ExecutionStatus.COMPLETED, state.error
        assert len(rec.of("join")) == 1
        assert len([c for c in rec.calls if c.execution_id == state.execution_id]) == FANOUT + 2
        # ...all while the def node was still in its thread
        assert not release.is_set()
        still = await engine.get_execution(sleeper)
        assert still.status is ExecutionStatus.RUNNING
        assert (
            "sleep" not in still.node_results or not still.node_results["sleep"].status.is_terminal
        )
    finally:
        release.set()
    done = await engine.wait_for_execution(sleeper, timeout=10)
    assert done.status is ExecutionStatus.COMPLETED, done.error
    assert done.node_results["sleep"].data == "slept"
    assert len(threads_seen) == 1
    assert threads_seen[0].startswith("spane-node")
    assert threads_seen[0] != threading.current_thread().name


async def test_a_def_node_timeout_fails_the_attempt_and_its_late_result_is_dropped(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    release, finished = threading.Event(), threading.Event()
    calls: list[int] = []

    def hang(ctx: ExecutionContext) -> str:
        calls.append(ctx.attempt)
        try:
            release.wait(10)
            ctx.log("info", "too late")
            return "late"
        finally:
            finished.set()

    registry.register("hang", hang)
    await engine.register_workflow(
        workflow("def-timeout", node("stuck", "hang", timeout_ms=100, retry_policy=fixed(1)))
    )
    await engine.start_workers(2)
    try:
        state = await engine.run_workflow("def-timeout", timeout=10)

        assert state.status is ExecutionStatus.FAILED
        stuck = state.node_results["stuck"]
        assert stuck.status is NodeStatus.FAILED
        assert "timed out after 100 ms" in (stuck.error or "")
        assert stuck.attempts == 1
        assert not finished.is_set()  # the thread is still in hang()
    finally:
        release.set()
    await wait_event(finished)  # the thread has returned "late"...
    await wait_until_idle(engine)
    final = await engine.get_execution(state.execution_id)
    # ...which changes nothing: the attempt was over
    assert final.status is ExecutionStatus.FAILED
    assert final.node_results["stuck"].status is NodeStatus.FAILED
    assert final.node_results["stuck"].data is None
    assert final.node_results["stuck"].error == stuck.error
    assert calls == [1]
    assert [log.message for log in await engine.store.get_logs(state.execution_id)] == []


async def test_a_def_node_timeout_is_retried_while_the_first_thread_runs_on(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    release, first_done = threading.Event(), threading.Event()

    def sometimes_slow(ctx: ExecutionContext) -> dict[str, int]:
        if ctx.attempt == 1:
            release.wait(10)
            first_done.set()
        return {"attempt": ctx.attempt}

    registry.register("slow", sometimes_slow)
    await engine.register_workflow(
        workflow("def-timeout-retry", node("n", "slow", timeout_ms=100, retry_policy=fixed(2)))
    )
    await engine.start_workers(2)
    try:
        state = await engine.run_workflow("def-timeout-retry", timeout=10)
        assert not first_done.is_set()  # the second attempt ran beside the first's thread
    finally:
        release.set()
    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert state.node_results["n"].attempts == 2
    assert state.node_results["n"].data == {"attempt": 2}
    await wait_event(first_done)
    await wait_until_idle(engine)
    assert (await engine.get_execution(state.execution_id)).node_results["n"].data == {"attempt": 2}


async def test_a_def_node_that_raises_is_retried_then_fails_like_an_async_one(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    attempts: dict[str, list[int]] = {"flaky": [], "broken": [], "permanent": []}

    def flaky(ctx: ExecutionContext) -> str:
        attempts["flaky"].append(ctx.attempt)
        if ctx.attempt < 3:
            raise ConnectionError(f"transient failure {ctx.attempt}")
        return "third time"

    def broken(ctx: ExecutionContext) -> str:
        attempts["broken"].append(ctx.attempt)
        raise ValueError("broken in the thread")

    def permanent(ctx: ExecutionContext) -> str:
        attempts["permanent"].append(ctx.attempt)
        raise NonRetryableError("no point retrying")

    registry.register("flaky", flaky)
    registry.register("broken", broken)
    registry.register("permanent", permanent)
    await engine.register_workflow(workflow("def-flaky", node("n", "flaky", retry_policy=fixed(3))))
    await engine.register_workflow(
        workflow("def-broken", node("n", "broken", retry_policy=fixed(2)))
    )
    await engine.register_workflow(
        workflow("def-permanent", node("n", "permanent", retry_policy=fixed(3)))
    )
    await engine.start_workers(2)

    ok = await engine.run_workflow("def-flaky", timeout=10)
    assert ok.status is ExecutionStatus.COMPLETED, ok.error
    assert ok.node_results["n"].data == "third time"
    assert ok.node_results["n"].attempts == 3

    failed = await engine.run_workflow("def-broken", timeout=10)
    assert failed.status is ExecutionStatus.FAILED
    assert "broken in the thread" in (failed.node_results["n"].error or "")
    assert failed.node_results["n"].attempts == 2
    dlq = [d for d in await engine.get_dlq_items() if d.execution_id == failed.execution_id]
    assert len(dlq) == 1
    assert "in broken" in (dlq[0].traceback or "")  # the user's frame, from the thread

    stopped = await engine.run_workflow("def-permanent", timeout=10)
    assert stopped.status is ExecutionStatus.FAILED
    assert "no point retrying" in (stopped.node_results["n"].error or "")
    assert attempts == {"flaky": [1, 2, 3], "broken": [1, 2], "permanent": [1]}


async def test_dsl_def_nodes_run_on_threads_beside_async_ones(engine: WorkflowEngine) -> None:
    wf = Workflow("dsl-def")

    @wf.node()
    def extract(data: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
        ctx.log("info", "extracted", rows=len(data["rows"]))
        return {"rows": data["rows"], "thread": threading.current_thread().name}

    @wf.node(after=[extract])
    async def total(extracted: dict[str, Any]) -> int:
        return sum(extracted["rows"])

    @wf.node(after=[total])
    def report(value: int) -> ExecutionResult:
        return success_result({"total": value, "thread": threading.current_thread().name})

    await engine.register_workflow(wf)
    await engine.start_workers(2)
    state = await engine.run_workflow("dsl-def", {"rows": [1, 2, 3]}, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert state.node_results["extract"].data["thread"].startswith("spane-node")
    assert state.node_results["total"].data == 6
    assert state.node_results["report"].data["total"] == 6
    assert state.node_results["report"].data["thread"].startswith("spane-node")
    logs = await engine.store.get_logs(state.execution_id, "extract")
    assert [(log.message, log.fields.get("rows")) for log in logs] == [("extracted", 3)]


class Pricing:
    """An executor object whose ``execute`` is a plain method."""

    def __init__(self, rate: float) -> None:
        self.rate = rate

    def execute(self, ctx: ExecutionContext) -> ExecutionResult:
        return success_result(
            {
                "price": ctx.input_data["amount"] * self.rate,
                "thread": threading.current_thread().name,
            }
        )


async def test_an_executor_object_with_a_def_execute_and_a_map_over_a_def_executor(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    def square(ctx: ExecutionContext) -> int:
        return int(ctx.input_data) ** 2

    registry.register("price", Pricing(2.5))
    registry.register("square", square)
    await engine.register_workflow(workflow("def-object", node("price", "price")))
    await engine.register_workflow(
        workflow("def-map", node("each", "map", config={"nodeType": "square"}))
    )
    await engine.start_workers(2)

    priced = await engine.run_workflow("def-object", {"amount": 4}, timeout=10)
    assert priced.status is ExecutionStatus.COMPLETED, priced.error
    assert priced.node_results["price"].data["price"] == 10.0
    assert priced.node_results["price"].data["thread"].startswith("spane-node")

    mapped = await engine.run_workflow("def-map", [1, 2, 3, 4], timeout=10)
    assert mapped.status is ExecutionStatus.COMPLETED, mapped.error
    assert mapped.node_results["each"].data == [1, 4, 9, 16]


async def test_the_engines_threads_option_sizes_the_pool_when_a_worker_starts(
    make_engine: Any,
) -> None:
    from spane_py.engine import threads

    with pytest.raises(ConfigurationError, match="threads must be a positive integer"):
        WorkflowEngine(NodeRegistry(), threads=0)
    before = threads.max_workers()
    try:
        engine = await make_engine(NodeRegistry(), threads=before + 3)
        assert threads.max_workers() == before  # nothing until a worker starts
        await engine.start_workers()
        assert threads.max_workers() == before + 3
    finally:
        threads.configure(before)
