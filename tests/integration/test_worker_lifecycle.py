"""Workers start, keep going after bad jobs, stop gracefully and leave no connection open."""

from __future__ import annotations

import asyncio
import gc
import time
import uuid
import warnings
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from spane_py import (
    ExecutionContext,
    ExecutionStatus,
    InMemoryExecutionStore,
    NodeRegistry,
    WorkflowEngine,
)
from tests.integration._support import node, workflow
from tests.integration.conftest import EngineFactory


def _named(url: str, name: str) -> str:
    """``url`` with a client name, so the server can tell us which connections are ours."""
    return f"{url}{'&' if urlsplit(url).query else '?'}client_name={name}"


async def _connections_named(redis_url: str, name: str) -> int:
    admin = Redis.from_url(redis_url)
    try:
        clients = await admin.client_list()
    finally:
        await admin.aclose()
    return sum(1 for c in clients if c.get("name") == name)


async def _run_one_execution_and_close(redis_url: str, key_prefix: str) -> None:
    registry = NodeRegistry()
    running = asyncio.Event()
    release = asyncio.Event()

    async def block(ctx: ExecutionContext) -> Any:
        running.set()
        await release.wait()
        return "done"

    registry.register("block", block)
    engine = WorkflowEngine(registry, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.05)
    await engine.start()
    try:
        await engine.register_workflow(workflow("hold", node("a", "block")))
        await engine.start_workers(1)
        await asyncio.sleep(0.2)  # idle: the worker's wake-up pops come and go
        eid = await engine.enqueue_workflow("hold")
        await asyncio.wait_for(running.wait(), 5)
        await asyncio.sleep(0.2)  # full: no wake-up pop in flight while the node runs
        release.set()
        assert (await engine.wait_for_execution(eid, timeout=10)).status is (
            ExecutionStatus.COMPLETED
        )
        await engine.stop_workers(grace_seconds=2.0)
        await engine.purge()
    finally:
        release.set()
        await engine.close()


async def test_closing_the_engine_closes_every_redis_connection_it_opened(
    redis_url: str, key_prefix: str
) -> None:
    """Each worker holds a second client for its blocking wake-up pop; it must be closed
    with the worker, or its socket leaks (a ResourceWarning, and a file descriptor, per
    worker start)."""
    name = f"spane-test-{uuid.uuid4().hex[:8]}"
    await _run_one_execution_and_close(_named(redis_url, name), key_prefix)

    # With the cyclic garbage collector off, a leaked client stays open (instead of being
    # closed by its finaliser at some random later moment) and the server still lists it.
    gc.disable()
    try:
        deadline = time.monotonic() + 1.0
        left = await _connections_named(redis_url, name)
        while left and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
            left = await _connections_named(redis_url, name)
    finally:
        gc.enable()
        with warnings.catch_warnings():  # close what leaked here, not in a later test
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()
    assert left == 0, f"{left} Redis connection(s) still open after engine.close()"


async def test_stop_workers_lets_a_running_node_finish_within_the_grace_period(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    entered = asyncio.Event()

    async def slowish(ctx: ExecutionContext) -> Any:
        entered.set()
        await asyncio.sleep(0.3)
        return "finished"

    registry.register("slowish", slowish)
    await engine.register_workflow(workflow("graceful", node("a", "slowish")))
    await engine.start_workers(2)
    eid = await engine.enqueue_workflow("graceful")
    await asyncio.wait_for(entered.wait(), 5)

    await engine.stop_workers(grace_seconds=5.0)

    state = await engine.get_execution(eid)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["a"].data == "finished"


async def test_a_node_cut_off_by_shutdown_runs_again_on_the_next_worker(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    attempts: list[int] = []
    entered = asyncio.Event()

    async def long(ctx: ExecutionContext) -> Any:
        attempts.append(ctx.attempt)
        entered.set()
        if len(attempts) == 1:
            await asyncio.sleep(10)  # cut off by the shutdown below
        return "second run"

    registry.register("long", long)
    await engine.register_workflow(workflow("cut-off", node("a", "long")))
    await engine.start_workers(1)
    eid = await engine.enqueue_workflow("cut-off")
    await asyncio.wait_for(entered.wait(), 5)

    await engine.stop_workers(grace_seconds=0.1)
    assert (await engine.get_execution(eid)).status is ExecutionStatus.RUNNING

    await engine.start_workers(1)
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["a"].data == "second run"
    assert len(attempts) == 2


async def test_a_worker_without_the_executor_fails_the_node_clearly_and_keeps_going(
    engine: WorkflowEngine,
    registry: NodeRegistry,
    store: InMemoryExecutionStore,
    make_engine: EngineFactory,
) -> None:
    """A worker process deployed without a node type's code: the node fails with an error
    naming the type; the worker does not crash and runs the other workflows."""

    async def tag(ctx: ExecutionContext) -> Any:
        return ctx.node_id

    registry.register("tag", tag)
    registry.register("plugin", tag)
    await engine.register_workflow(
        workflow("uses-plugin", node("a", "tag"), node("p", "plugin", "a"))
    )
    await engine.register_workflow(workflow("plain", node("a", "tag")))
    worker_registry = NodeRegistry()
    worker_registry.register("tag", tag)  # but not "plugin"
    worker = await make_engine(worker_registry, store, key_prefix=engine.key_prefix)
    await worker.start_workers(2)

    state = await engine.run_workflow("uses-plugin", timeout=10)

    assert state.status is ExecutionStatus.FAILED
    assert "'plugin'" in (state.node_results["p"].error or "")
    assert (await engine.run_workflow("plain", timeout=10)).status is ExecutionStatus.COMPLETED
