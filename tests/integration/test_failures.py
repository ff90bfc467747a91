"""Failures, retries with backoff, continue-on-fail and node timeouts, through real workers."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from spane_py import (
    ExecutionContext,
    ExecutionStatus,
    NodeRegistry,
    NodeStatus,
    NonRetryableError,
    WorkflowEngine,
    error_result,
)
from spane_py.observability import events
from tests.integration._support import (
    Recorder,
    capture_events,
    node,
    wait_queue_empty,
    wait_until,
    wait_until_idle,
    workflow,
)


def fixed(max_attempts: int, delay_ms: int, **extra: Any) -> dict[str, Any]:
    return {
        "max_attempts": max_attempts,
        "backoff": {"type": "fixed", "delay": delay_ms},
        **extra,
    }


async def _ok(ctx: ExecutionContext) -> Any:
    return {"node": ctx.node_id, "input": ctx.input_data}


async def test_failure_fails_the_execution_stops_downstream_and_lets_in_flight_siblings_finish(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    slow_started = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> Any:
        slow_started.set()

        async def execution_failed() -> bool:
            return (await engine.get_execution(ctx.execution_id)).status.is_terminal

        # Still running when "bad" fails: it ends once the failure is recorded.
        await wait_until(execution_failed, timeout=10, what="the execution to fail")
        return "slow done"

    async def bad(ctx: ExecutionContext) -> Any:
        await slow_started.wait()
        raise RuntimeError("bad broke")

    rec.register(registry, "ok", _ok)
    rec.register(registry, "slow", slow)
    rec.register(registry, "bad", bad)
    await engine.register_workflow(
        workflow(
            "stop-on-fail",
            node("start", "ok"),
            node("bad", "bad", "start"),
            node("after_bad", "ok", "bad"),
            node("slow", "slow", "start"),
            node("after_slow", "ok", "slow"),
            node("join", "ok", "after_bad", "after_slow"),
        )
    )
    await engine.start_workers(4)

    eid = await engine.enqueue_workflow("stop-on-fail", 1)
    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.FAILED
    assert state.completed_at is not None
    assert "bad" in (state.error or "")
    assert "bad broke" in (state.error or "")
    assert state.node_results["bad"].status is NodeStatus.FAILED
    assert not state.node_results["bad"].success
    assert "bad broke" in (state.node_results["bad"].error or "")
    assert rec.of("after_bad") == []

    # The slow sibling was in flight: it finishes and is recorded...
    async def slow_recorded() -> bool:
        st = await engine.get_execution(eid)
        return "slow" in st.node_results and st.node_results["slow"].status.is_terminal

    await wait_until(slow_recorded, timeout=10, what="the in-flight sibling to be recorded")
    # slow's job has ended: a job it (wrongly) sent for after_slow has been consumed, and
    # what that one ran has run.
    await wait_until_idle(engine)
    final = await engine.get_execution(eid)
    assert final.node_results["slow"].status is NodeStatus.SUCCEEDED
    assert final.node_results["slow"].data == "slow done"
    # ...but starts nothing new, and the execution stays failed.
    assert rec.of("after_slow") == []
    assert rec.of("join") == []
    assert final.status is ExecutionStatus.FAILED
    assert final.error == state.error
    for never in ("after_bad", "after_slow", "join"):
        result = final.node_results.get(never)
        assert result is None or result.status is not NodeStatus.SUCCEEDED, never


async def test_retry_with_fixed_backoff_then_success(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def flaky(ctx: ExecutionContext) -> Any:
        if ctx.attempt < 3:
            raise ConnectionError(f"transient failure {ctx.attempt}")
        return {"ok": True, "attempt": ctx.attempt}

    rec.register(registry, "flaky", flaky)
    rec.register(registry, "ok", _ok)
    await engine.register_workflow(
        workflow(
            "retry-ok",
            node("flaky", "flaky", retry_policy=fixed(3, 150)),
            node("next", "ok", "flaky"),
        )
    )
    await engine.start_workers(2)

    eid = await engine.enqueue_workflow("retry-ok")
    state = await engine.wait_for_execution(eid, timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    result = state.node_results["flaky"]
    assert result.status is NodeStatus.SUCCEEDED
    assert result.attempts == 3
    assert result.data == {"ok": True, "attempt": 3}
    calls = rec.of("flaky")
    assert [c.attempt for c in calls] == [1, 2, 3]
    gaps = [b.at - a.at for a, b in itertools.pairwise(calls)]
    assert all(gap >= 0.14 for gap in gaps), gaps  # each retry waited its 150 ms backoff
    assert calls[-1].at - calls[0].at < 2.0
    assert state.node_results["next"].data == {"node": "next", "input": result.data}


async def test_retry_with_exponential_backoff_doubles_the_wait(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def flaky(ctx: ExecutionContext) -> Any:
        if ctx.attempt < 3:
            raise ValueError("not yet")
        return ctx.attempt

    rec.register(registry, "flaky", flaky)
    policy = {"max_attempts": 3, "backoff": {"type": "exponential", "delay": 100}}
    await engine.register_workflow(workflow("retry-exp", node("n", "flaky", retry_policy=policy)))
    await engine.start_workers(2)

    state = await engine.run_workflow("retry-exp", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n"].attempts == 3
    first, second, third = (c.at for c in rec.of("n"))
    assert second - first >= 0.095  # 100 ms
    assert third - second >= 0.195  # 200 ms


async def test_error_result_fails_without_retry(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def refuse(ctx: ExecutionContext) -> Any:
        return error_result("input rejected")

    rec.register(registry, "refuse", refuse)
    rec.register(registry, "ok", _ok)
    await engine.register_workflow(
        workflow(
            "error-result",
            node("n", "refuse", retry_policy=fixed(5, 10)),
            node("after", "ok", "n"),
        )
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("error-result", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    result = state.node_results["n"]
    assert result.status is NodeStatus.FAILED
    assert result.error == "input rejected"
    assert result.attempts == 1
    assert len(rec.of("n")) == 1
    assert rec.of("after") == []
    assert "input rejected" in (state.error or "")


async def test_non_retryable_error_fails_at_once(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def fatal(ctx: ExecutionContext) -> Any:
        raise NonRetryableError("the account is closed")

    rec.register(registry, "fatal", fatal)
    await engine.register_workflow(
        workflow("non-retryable", node("n", "fatal", retry_policy=fixed(5, 10)))
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("non-retryable", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    assert state.node_results["n"].attempts == 1
    assert "the account is closed" in (state.node_results["n"].error or "")
    assert len(rec.of("n")) == 1


async def test_exhausting_attempts_fails_the_node_and_the_execution(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def broken(ctx: ExecutionContext) -> Any:
        raise ValueError(f"boom {ctx.attempt}")

    rec.register(registry, "broken", broken)
    rec.register(registry, "ok", _ok)
    await engine.register_workflow(
        workflow(
            "exhaust",
            node("n", "broken", retry_policy=fixed(3, 20)),
            node("after", "ok", "n"),
        )
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("exhaust", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    result = state.node_results["n"]
    assert result.status is NodeStatus.FAILED
    assert result.attempts == 3
    assert "ValueError" in (result.error or "")
    assert "boom 3" in (result.error or "")
    assert [c.attempt for c in rec.of("n")] == [1, 2, 3]
    assert rec.of("after") == []
    await wait_queue_empty(engine)  # no job left behind


async def test_no_retry_policy_means_a_single_attempt(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def broken(ctx: ExecutionContext) -> Any:
        raise RuntimeError("once")

    rec.register(registry, "broken", broken)
    await engine.register_workflow(workflow("no-policy", node("n", "broken")))
    await engine.start_workers(2)

    state = await engine.run_workflow("no-policy", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    assert state.node_results["n"].attempts == 1
    assert len(rec.calls) == 1


async def test_continue_on_fail_turns_the_final_failure_into_success_carrying_the_error(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def broken(ctx: ExecutionContext) -> Any:
        raise RuntimeError("upstream API is down")

    rec.register(registry, "broken", broken)
    rec.register(registry, "ok", _ok)
    await engine.register_workflow(
        workflow(
            "continue",
            node("risky", "broken", retry_policy=fixed(2, 10, continue_on_fail=True)),
            node("after", "ok", "risky"),
            node("side", "ok"),
            node("join", "ok", "after", "side"),
        )
    )
    await engine.start_workers(4)

    state = await engine.run_workflow("continue", "in", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    risky = state.node_results["risky"]
    assert risky.status is NodeStatus.SUCCEEDED
    assert risky.success
    assert risky.attempts == 2  # the policy's attempts were used up first
    assert isinstance(risky.data, dict)
    assert "upstream API is down" in str(risky.data.get("error"))
    # Downstream nodes run and see the error-carrying data.
    assert state.node_results["after"].data == {"node": "after", "input": risky.data}
    assert state.node_results["join"].status is NodeStatus.SUCCEEDED
    assert len(rec.of("after")) == 1


async def test_timeout_is_a_failed_attempt_that_is_retried(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def sometimes_slow(ctx: ExecutionContext) -> Any:
        if ctx.attempt == 1:
            await asyncio.sleep(30)  # cut off by the node's timeout
        return "fast enough"

    rec.register(registry, "slow", sometimes_slow)
    await engine.register_workflow(
        workflow("timeout-retry", node("n", "slow", timeout_ms=50, retry_policy=fixed(2, 10)))
    )
    await engine.start_workers(2)

    started = time.monotonic()
    state = await engine.run_workflow("timeout-retry", timeout=10)

    assert time.monotonic() - started < 8  # far under the 30 s it would hang
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n"].attempts == 2
    assert state.node_results["n"].data == "fast enough"
    assert [c.attempt for c in rec.of("n")] == [1, 2]


async def test_timeout_without_retries_fails_the_node_with_a_timeout_message(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    cancelled = asyncio.Event()

    async def hang(ctx: ExecutionContext) -> Any:
        try:
            await asyncio.sleep(30)  # cut off by the node's timeout
        except asyncio.CancelledError:
            cancelled.set()
            raise
        return "never"

    rec.register(registry, "hang", hang)
    rec.register(registry, "ok", _ok)
    await engine.register_workflow(
        workflow("timeout-fail", node("stuck", "hang", timeout_ms=80), node("after", "ok", "stuck"))
    )
    await engine.start_workers(2)

    started = time.monotonic()
    state = await engine.run_workflow("timeout-fail", timeout=10)

    assert time.monotonic() - started < 8  # far under the 30 s it would hang
    assert state.status is ExecutionStatus.FAILED
    result = state.node_results["stuck"]
    assert result.status is NodeStatus.FAILED
    assert result.attempts == 1
    assert "timed out" in (result.error or "")
    assert "80 ms" in (result.error or "")
    assert "stuck" in (result.error or "")
    assert cancelled.is_set()  # the executor was cancelled, not left running
    assert rec.of("after") == []


async def test_timeout_on_every_attempt_exhausts_the_policy(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def hang(ctx: ExecutionContext) -> Any:
        await asyncio.sleep(30)  # cut off by the node's timeout

    rec.register(registry, "hang", hang)
    await engine.register_workflow(
        workflow("timeout-all", node("n", "hang", timeout_ms=40, retry_policy=fixed(3, 10)))
    )
    await engine.start_workers(2)

    state = await engine.run_workflow("timeout-all", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    assert state.node_results["n"].attempts == 3
    assert "timed out" in (state.node_results["n"].error or "")
    assert len(rec.of("n")) == 3


async def test_a_sibling_waiting_in_the_queue_never_starts_after_the_failure(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def bad(ctx: ExecutionContext) -> Any:
        raise RuntimeError("fails first")

    rec.register(registry, "ok", _ok)
    rec.register(registry, "bad", bad)
    await engine.register_workflow(
        workflow(
            "queued-sibling",
            node("start", "ok"),
            node("a_bad", "bad", "start"),
            node("z_waiting", "ok", "start"),
        )
    )
    await engine.start_workers(1)  # one job at a time: z_waiting is still queued

    state = await engine.run_workflow("queued-sibling", timeout=10)
    await wait_until_idle(engine)  # z_waiting's job has been consumed

    assert state.status is ExecutionStatus.FAILED
    assert len(rec.of("a_bad")) == 1
    assert rec.of("z_waiting") == []
    final = await engine.get_execution(state.execution_id)
    assert final.status is ExecutionStatus.FAILED
    assert final.node_results["z_waiting"].status is NodeStatus.CANCELLED


async def test_a_sibling_in_retry_backoff_does_not_retry_after_the_failure(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def flaky(ctx: ExecutionContext) -> Any:
        raise ConnectionError(f"attempt {ctx.attempt}")

    async def bad(ctx: ExecutionContext) -> Any:
        # Once flaky's first attempt has failed and its retry waits out the backoff.
        await seen.wait_for(events.NODE_RETRYING, execution_id=ctx.execution_id, node_id="flaky")
        raise RuntimeError("fatal")

    rec.register(registry, "ok", _ok)
    rec.register(registry, "flaky", flaky)
    rec.register(registry, "bad", bad)
    await engine.register_workflow(
        workflow(
            "backoff-sibling",
            node("start", "ok"),
            node("flaky", "flaky", "start", retry_policy=fixed(5, 300)),
            node("bad", "bad", "start"),
        )
    )
    await engine.start_workers(4)

    with capture_events() as seen:
        state = await engine.run_workflow("backoff-sibling", timeout=10)
        assert state.status is ExecutionStatus.FAILED
        assert "fatal" in (state.error or "")
        # flaky's retry came due after its 300 ms backoff, found the execution failed and
        # was dropped: nothing is scheduled any more.
        await wait_until_idle(engine)

    assert [c.attempt for c in rec.of("flaky")] == [1]
    final = await engine.get_execution(state.execution_id)
    assert final.status is ExecutionStatus.FAILED
    assert final.node_results["flaky"].status is NodeStatus.CANCELLED  # dropped, not retried
    assert seen.of(events.NODE_DROPPED, node_id="flaky") != []


async def test_continue_on_fail_also_covers_timeouts_and_non_retryable_errors(
    engine: WorkflowEngine, registry: NodeRegistry, rec: Recorder
) -> None:
    async def hang(ctx: ExecutionContext) -> Any:
        await asyncio.sleep(30)  # cut off by the node's timeout

    async def fatal(ctx: ExecutionContext) -> Any:
        raise NonRetryableError("permanently broken")

    rec.register(registry, "hang", hang)
    rec.register(registry, "fatal", fatal)
    rec.register(registry, "ok", _ok)
    keep_going = fixed(1, 10, continue_on_fail=True)
    await engine.register_workflow(
        workflow(
            "continue-more",
            node("slow", "hang", timeout_ms=50, retry_policy=keep_going),
            node("broken", "fatal", retry_policy=keep_going),
            node("join", "ok", "slow", "broken"),
        )
    )
    await engine.start_workers(4)

    state = await engine.run_workflow("continue-more", timeout=10)

    assert state.status is ExecutionStatus.COMPLETED, state.error
    assert "timed out" in str(state.node_results["slow"].data["error"])
    assert "permanently broken" in str(state.node_results["broken"].data["error"])
    assert set(state.node_results["join"].data["input"]) == {"slow", "broken"}
