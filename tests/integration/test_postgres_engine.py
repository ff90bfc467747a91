"""The engine on the PostgreSQL store: durable state shared by several engines."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from arq.constants import job_key_prefix

from spane_py import ExecutionContext, NodeRegistry, RetryPolicy, WorkflowEngine
from spane_py.queue.jobs import NodeJob
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.integration._support import queue_is_empty, wait_until

DIAMOND = {
    "id": "diamond",
    "nodes": [
        {"id": "a", "type": "add", "outputs": ["b", "c"]},
        {"id": "b", "type": "add", "outputs": ["d"]},
        {"id": "c", "type": "add", "outputs": ["d"]},
        {"id": "d", "type": "sum"},
    ],
}


def registry() -> NodeRegistry:
    reg = NodeRegistry()

    async def add(ctx: ExecutionContext) -> int:
        return int(ctx.input_data) + 1

    async def total(ctx: ExecutionContext) -> int:
        return sum(ctx.input_data.values())

    reg.register("add", add)
    reg.register("sum", total)
    return reg


def make_engine(
    url: str, schema: str, redis_url: str, prefix: str, reg: NodeRegistry | None = None, **kw: Any
) -> WorkflowEngine:
    store = PostgresExecutionStore(url, schema=schema, min_pool_size=1, max_pool_size=10)
    return WorkflowEngine(
        reg or registry(), store, redis_url=redis_url, key_prefix=prefix, poll_delay=0.2, **kw
    )


async def test_workflows_run_and_state_survives_the_engine(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    engine = make_engine(database_url, pg_schema, redis_url, key_prefix)
    async with engine:
        await engine.register_workflow(DIAMOND)
        await engine.start_workers(4)
        state = await engine.run_workflow("diamond", 0, timeout=20)
        assert state.status == "completed"
        assert {n: r.data for n, r in state.node_results.items()} == {
            "a": 1,
            "b": 2,
            "c": 2,
            "d": 4,
        }
        eid = state.execution_id
        await engine.purge()
    await engine.store.close()
    # A new process (here: a new store on the same schema) sees everything.
    async with PostgresExecutionStore(database_url, schema=pg_schema) as store:
        record = await store.get_execution(eid)
        assert record is not None
        assert record.status == "completed"
        nodes = await store.get_node_results(eid)
        assert nodes["d"].data == 4
        assert (await store.get_workflow("diamond")) is not None


async def test_a_worker_that_never_registered_the_workflow_runs_it(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    """Lazy definitions: only executors are registered in the worker; the pinned version
    comes from PostgreSQL through the cache. The producer has no worker at all."""
    producer = make_engine(database_url, pg_schema, redis_url, key_prefix)
    worker = make_engine(database_url, pg_schema, redis_url, key_prefix)
    async with producer, worker:
        await producer.register_workflow(DIAMOND)
        await worker.start_workers(4)
        started = time.monotonic()
        state = await producer.run_workflow("diamond", 10, timeout=20)
        assert state.status == "completed"
        assert state.node_results["d"].data == 24
        # Announced across engines over Redis: well under the store re-read interval.
        assert time.monotonic() - started < 5
        assert worker.cache_stats().misses == 1
        await producer.purge()
    await producer.store.close()
    await worker.store.close()


async def test_sweeper_sends_a_lost_job_again(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    engine = make_engine(database_url, pg_schema, redis_url, key_prefix)
    async with engine:
        await engine.register_workflow(DIAMOND)
        eid = await engine.enqueue_workflow("diamond", 0)
        # Redis loses the entry job (say it was flushed) before any worker took it.
        job_id = engine.queue.job_id(NodeJob(eid, "diamond", 1, "a"))
        await engine.queue.redis.delete(job_key_prefix + job_id)
        await engine.queue.redis.zrem(engine.queue.keys.queue, job_id)
        assert await engine.sweep() == 0  # not stale yet
        later = datetime.now(UTC) + timedelta(seconds=1)
        assert await engine.sweep(older_than=later) == 1
        assert await engine.sweep(older_than=later) == 0  # the job exists again: left alone
        await engine.start_workers(2)
        state = await engine.wait_for_execution(eid, timeout=20)
        assert state.status == "completed"
        await engine.purge()
    await engine.store.close()


async def test_retries_and_failures_are_recorded(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    reg = NodeRegistry()
    calls: list[int] = []

    async def flaky(ctx: ExecutionContext) -> str:
        calls.append(ctx.attempt)
        ctx.log("info", "trying", attempt=ctx.attempt)
        if ctx.attempt < 3:
            raise RuntimeError(f"boom {ctx.attempt}")
        return "ok"

    async def broken(ctx: ExecutionContext) -> None:
        raise RuntimeError("always")

    reg.register("flaky", flaky)
    reg.register("broken", broken)
    retry = RetryPolicy(max_attempts=3, backoff={"type": "fixed", "delay": 10})
    engine = make_engine(database_url, pg_schema, redis_url, key_prefix, reg)
    async with engine:
        await engine.register_workflow(
            {"id": "f", "nodes": [{"id": "x", "type": "flaky", "retryPolicy": retry}]}
        )
        await engine.register_workflow({"id": "g", "nodes": [{"id": "y", "type": "broken"}]})
        await engine.start_workers(2)
        ok = await engine.run_workflow("f", timeout=20)
        assert ok.status == "completed"
        assert ok.node_results["x"].attempts == 3
        assert calls == [1, 2, 3]
        logs = await engine.store.get_logs(ok.execution_id)
        assert [log.fields["attempt"] for log in logs] == [1, 2, 3]
        bad = await engine.run_workflow("g", timeout=20)
        assert bad.status == "failed"
        assert "always" in (bad.node_results["y"].error or "")
        await engine.purge()
    await engine.store.close()


async def test_many_executions_on_two_worker_engines_each_join_once(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    joins: list[str] = []
    reg = registry()

    async def total(ctx: ExecutionContext) -> int:
        joins.append(ctx.execution_id)
        await asyncio.sleep(0)
        return sum(ctx.input_data.values())

    reg.register("sum", total, replace=True)
    one = make_engine(database_url, pg_schema, redis_url, key_prefix, reg)
    two = make_engine(database_url, pg_schema, redis_url, key_prefix, reg)
    async with one, two:
        await one.register_workflow(DIAMOND)
        await one.start_workers(8)
        await two.start_workers(8)
        ids = [await one.enqueue_workflow("diamond", i) for i in range(60)]
        states = [await one.wait_for_execution(e, timeout=60) for e in ids]
        assert all(s.status == "completed" for s in states)
        assert [s.node_results["d"].data for s in states] == [2 * i + 4 for i in range(60)]
        assert sorted(joins) == sorted(ids)  # every join ran exactly once
        await one.purge()
    await one.store.close()
    await two.store.close()


async def test_workflows_register_before_the_engine_starts(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    """Registration needs the store, not Redis: the engine starts the store for it."""
    from spane_py import PostgresExecutionStore as Exported

    engine = make_engine(database_url, pg_schema, redis_url, key_prefix)
    assert isinstance(engine.store, Exported)
    saved = await engine.register_workflow(DIAMOND)
    assert saved.version == 1
    assert [r.workflow_id for r in await engine.list_workflows()] == ["diamond"]
    assert (await engine.get_workflow("diamond")).id == "diamond"
    assert not engine.store.embedded
    async with engine:
        await engine.start_workers(2)
        assert (await engine.run_workflow("diamond", 1, timeout=20)).status == "completed"
        await engine.purge()


def test_a_dsn_and_embedded_together_are_refused() -> None:
    from spane_py import ConfigurationError

    with pytest.raises(ConfigurationError, match="not both"):
        PostgresExecutionStore("postgresql://postgres@127.0.0.1/postgres", embedded=True)


@pytest.mark.parametrize("action", ["pause", "cancel"])
async def test_a_node_claimed_after_another_engine_paused_or_cancelled_does_not_run(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str, action: str
) -> None:
    """The worker knows the new execution as created (its entry node queued) and would
    start it without reading; a pause or cancel made by another engine meanwhile counts in
    the claim's control epoch, so the start reads and the node does not run."""
    calls: list[str] = []
    reg = NodeRegistry()

    async def note(ctx: ExecutionContext) -> str:
        calls.append(ctx.execution_id)
        return "ran"

    reg.register("note", note)
    flow = {"id": "one", "nodes": [{"id": "a", "type": "note"}]}
    worker = make_engine(database_url, pg_schema, redis_url, key_prefix, reg)
    other = make_engine(database_url, pg_schema, redis_url, key_prefix, reg)
    async with worker, other:
        await worker.register_workflow(flow)
        await worker.start_workers(2)
        warm = await worker.run_workflow("one", timeout=20)  # a claim answered the epoch
        assert warm.status == "completed"
        calls.clear()
        eid = await worker.enqueue_workflow("one", delay=0.3)
        if action == "pause":
            assert await other.pause_execution(eid)
        else:
            assert await other.cancel_execution(eid)

        await wait_until(
            lambda: queue_is_empty(worker), timeout=30, what="the entry job's delivery"
        )
        assert calls == []
        if action == "pause":
            assert (await worker.get_execution(eid)).status == "paused"
            assert await other.resume_execution(eid)
            state = await worker.wait_for_execution(eid, timeout=20)
            assert state.status == "completed"
            assert calls == [eid]
        else:
            state = await worker.get_execution(eid)
            assert state.status == "cancelled"
            assert state.node_results["a"].status == "cancelled"
