"""The engine's injectable clock and ``run_until_idle(skip_time=True)``: a burst worker that
skips a ``SkippingClock`` over the waits nothing else fills (delays, retry backoff, wait
timeouts, execution deadlines), so what would take hours runs in one test, deterministically.

Every test here waits hours of engine time under a real-time ``asyncio.wait_for`` bound of
seconds: it can only pass if the time was skipped, not waited."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import pytest

from spane_py import (
    ConfigurationError,
    ExecutionContext,
    ExecutionStatus,
    NodeRegistry,
    ResumeTokenError,
    SkippingClock,
    WorkflowEngine,
)
from tests.integration._support import Recorder, node, wait_until, workflow
from tests.integration.conftest import EngineFactory, StoreFactory

HOUR = 3600.0


async def test_a_one_hour_delay_completes_on_the_skipped_clock(
    make_engine: EngineFactory, new_store: StoreFactory, rec: Recorder
) -> None:
    registry = NodeRegistry()

    async def tag(ctx: ExecutionContext) -> Any:
        return {"at": ctx.input_data}

    rec.register(registry, "tag", tag)
    clock = SkippingClock()
    engine = await make_engine(registry, new_store(), clock=clock)
    await engine.register_workflow(
        workflow(
            "later",
            node("wait", "delay", config={"duration_seconds": HOUR}),
            node("after", "tag", "wait"),
        )
    )
    execution_id = await engine.enqueue_workflow("later", 1)
    before = clock.now()

    await asyncio.wait_for(engine.run_until_idle(skip_time=True), 30)

    state = await engine.get_execution(execution_id)
    assert state.status is ExecutionStatus.COMPLETED
    assert [c.node_id for c in rec.calls] == ["after"]
    # Skipped: the hour, less the real time the test took to get there.
    assert timedelta(minutes=59) < clock.skipped < timedelta(hours=1, seconds=1)
    assert clock.now() - before >= timedelta(hours=1)
    waited = state.node_results["wait"]
    assert waited.completed_at is not None
    assert waited.started_at is not None
    # The records carry the engine's clock: an hour apart, though it took milliseconds.
    assert waited.completed_at - waited.started_at >= timedelta(hours=1)
    assert waited.completed_at >= before + timedelta(hours=1)


async def test_retry_backoff_is_skipped_and_counted_on_the_engine_clock(
    make_engine: EngineFactory,
) -> None:
    registry = NodeRegistry()
    attempts: list[int] = []

    async def flaky(ctx: ExecutionContext) -> Any:
        attempts.append(ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"attempt {ctx.attempt} fails")
        return "ok"

    registry.register("flaky", flaky)
    clock = SkippingClock()
    engine = await make_engine(registry, clock=clock)
    ten_minutes = 10 * 60 * 1000
    await engine.register_workflow(
        workflow(
            "retrying",
            node(
                "f",
                "flaky",
                retryPolicy={
                    "maxAttempts": 3,
                    "backoff": {"type": "fixed", "delay": ten_minutes},
                },
            ),
        )
    )
    execution_id = await engine.enqueue_workflow("retrying", None)

    await asyncio.wait_for(engine.run_until_idle(skip_time=True), 30)

    state = await engine.get_execution(execution_id)
    assert state.status is ExecutionStatus.COMPLETED
    assert attempts == [1, 2, 3]
    assert timedelta(minutes=19) < clock.skipped < timedelta(minutes=20, seconds=1)


async def test_a_wait_nodes_timeout_and_its_tokens_expiry_follow_the_clock(
    make_engine: EngineFactory,
) -> None:
    clock = SkippingClock()
    engine = await make_engine(NodeRegistry(), clock=clock)
    await engine.register_workflow(
        workflow(
            "approval",
            node(
                "approve",
                "wait",
                config={
                    "timeout_seconds": 24 * HOUR,
                    "on_timeout": "continue",
                    "default_output": {"approved": False},
                },
            ),
        )
    )
    execution_id = await engine.enqueue_workflow("approval", None)
    # A worker runs until the node waits: its token is good now...
    await engine.start_workers()

    async def token_issued() -> bool:
        return bool(await engine.list_resume_tokens(execution_id))

    await wait_until(token_issued, timeout=10, what="the wait node's token")
    await engine.stop_workers()
    [token] = await engine.list_resume_tokens(execution_id)
    assert (await engine.validate_resume_token(token.token)).token == token.token

    # ...and skipping a day runs into the node's timeout; the token expired with it.
    await asyncio.wait_for(engine.run_until_idle(skip_time=True), 30)

    state = await engine.get_execution(execution_id)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["approve"].data == {"approved": False}
    assert timedelta(hours=23, minutes=59) < clock.skipped < timedelta(hours=24, seconds=1)
    with pytest.raises(ResumeTokenError):
        await engine.validate_resume_token(token.token)


async def test_an_execution_deadline_fires_on_the_skipped_clock(
    make_engine: EngineFactory,
) -> None:
    clock = SkippingClock()
    engine = await make_engine(NodeRegistry(), clock=clock)
    await engine.register_workflow(
        workflow(
            "bounded",
            node("approve", "wait", config={}),  # waits for a person, with no timeout
            timeout=int(2 * HOUR * 1000),
        )
    )
    execution_id = await engine.enqueue_workflow("bounded", None)

    await asyncio.wait_for(engine.run_until_idle(skip_time=True), 30)

    state = await engine.get_execution(execution_id)
    assert state.status is ExecutionStatus.FAILED
    assert "ran past its timeout" in (state.error or "")
    assert timedelta(hours=1, minutes=59) < clock.skipped < timedelta(hours=2, seconds=1)


async def test_skip_time_needs_a_skipping_clock(make_engine: EngineFactory) -> None:
    engine = await make_engine(NodeRegistry())
    with pytest.raises(ConfigurationError, match="SkippingClock"):
        await engine.run_until_idle(skip_time=True)


def test_a_clock_without_now_is_refused() -> None:
    with pytest.raises(ConfigurationError, match="now"):
        WorkflowEngine(NodeRegistry(), clock=object())  # type: ignore[arg-type]
