"""The queue underneath the engine: JSON-only jobs, wake-up, scheduling, priority, leases."""

from __future__ import annotations

import asyncio
import pickle
import time
from typing import Any

from arq.constants import in_progress_key_prefix, job_key_prefix

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.queue.jobs import FUNCTION_NAME, NodeJob
from tests.integration._support import named_url, queue_is_empty, wait_blocked, wait_until

ONE_NODE = {"id": "one", "nodes": [{"id": "only", "type": "record"}]}


def recording_registry(calls: list[Any]) -> NodeRegistry:
    registry = NodeRegistry()

    async def record(ctx: ExecutionContext) -> Any:
        calls.append(ctx.input_data)
        return ctx.input_data

    registry.register("record", record)
    return registry


async def test_pickled_job_is_refused_not_executed(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    calls: list[Any] = []

    async def record(ctx: ExecutionContext) -> Any:
        calls.append(ctx.input_data)
        return ctx.input_data

    registry.register("record", record)
    await engine.register_workflow(ONE_NODE)
    eid = await engine.enqueue_workflow("one", "json")
    job = NodeJob(eid, "one", 1, "only")
    job_id = engine.queue.job_id(job)
    # Replace the job's data with a pickle that would run code if it were unpickled.
    payload = {"t": None, "f": FUNCTION_NAME, "a": (job.payload(),), "k": {}, "et": 0}
    evil = pickle.dumps(payload) + b"cos\nsystem\n(S'touch /tmp/spane-pwned'\ntR."
    await engine.queue.redis.set(job_key_prefix + job_id, evil)
    await engine.start_workers(2)

    async def dropped() -> bool:
        return not await engine.queue.redis.exists(job_key_prefix + job_id)

    await wait_until(dropped, timeout=10, what="the pickled job to be dropped")
    assert calls == []
    # The worker survived and still runs well-formed jobs.
    state = await engine.run_workflow("one", "after", timeout=10)
    assert state.status == "completed"
    assert calls == ["after"]


async def test_idle_worker_wakes_when_another_process_enqueues(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    """With a 5 s poll delay, only the wake list can explain a sub-second pickup."""
    calls: list[Any] = []
    reg = recording_registry(calls)
    name = f"spane-wake-{key_prefix}"
    worker_side = WorkflowEngine(
        reg, redis_url=named_url(redis_url, name), key_prefix=key_prefix, poll_delay=5
    )
    # A second engine on the same store stands in for a separate enqueuing process: it does
    # not share the worker's in-process wake event.
    producer = WorkflowEngine(
        reg, worker_side.store, redis_url=redis_url, key_prefix=key_prefix, poll_delay=5
    )
    async with worker_side, producer:
        await producer.register_workflow(ONE_NODE)
        await worker_side.start_workers(2)
        await wait_blocked(redis_url, name)  # the worker is now blocked on the wake list
        started = time.monotonic()
        eid = await producer.enqueue_workflow("one", 1)
        state = await producer.wait_for_execution(eid, timeout=10)
        assert state.status == "completed"
        assert time.monotonic() - started < 2.0
        await worker_side.purge()


async def test_delayed_start_waits_for_its_due_time(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    seen: list[float] = []

    async def stamp(ctx: ExecutionContext) -> None:
        seen.append(time.monotonic())

    registry.register("record", stamp)
    await engine.register_workflow(ONE_NODE)
    await engine.start_workers(2)
    started = time.monotonic()
    eid = await engine.enqueue_workflow("one", delay=0.6)
    stats = await engine.get_queue_stats()
    assert stats.scheduled == 1
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "completed"
    assert seen[0] - started >= 0.55


async def test_higher_priority_runs_first(engine: WorkflowEngine, registry: NodeRegistry) -> None:
    order: list[Any] = []

    async def record(ctx: ExecutionContext) -> None:
        order.append(ctx.input_data)

    registry.register("record", record)
    await engine.register_workflow(ONE_NODE)
    ids = [await engine.enqueue_workflow("one", p, priority=p) for p in (1, 5, 10, 3, 8)]
    ids.append(await engine.enqueue_workflow("one", "default"))  # priority 5
    await engine.start_workers(1)
    for eid in ids:
        await engine.wait_for_execution(eid, timeout=10)
    assert order == [10, 8, 5, "default", 3, 1]


async def test_running_job_holds_a_refreshed_lease(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    release = asyncio.Event()

    async def block(ctx: ExecutionContext) -> None:
        await release.wait()

    registry.register("record", block)
    async with WorkflowEngine(
        registry, redis_url=redis_url, key_prefix=key_prefix, lease_seconds=1.0
    ) as engine:
        await engine.register_workflow(ONE_NODE)
        eid = await engine.enqueue_workflow("one")
        await engine.start_workers(1)
        [(worker, _)] = engine._workers
        redis, keys = engine.queue.redis, engine.queue.keys
        job_id = engine.queue.job_id(NodeJob(eid, "one", 1, "only"))
        owner_key = in_progress_key_prefix + job_id

        async def owned() -> bool:
            return bool(await redis.exists(owner_key))

        async def not_owned() -> bool:
            return not await owned()

        await wait_until(owned, timeout=10, what="the job to be claimed")
        # The job left the queue for the running set; arq's in-progress key names its owner.
        assert await redis.get(owner_key) == worker.worker_id.encode()
        assert await redis.zscore(keys.queue, job_id) is None
        first = await redis.zscore(keys.running, job_id)
        assert first is not None
        # Well past the 1 s lease, it is still running here: the worker renews its lease
        # (the deadline moves on, on the Redis clock).
        await asyncio.sleep(1.6)
        later = await redis.zscore(keys.running, job_id)
        assert later is not None
        assert later > first
        seconds, micros = await redis.time()
        assert 0 < later - (seconds * 1000 + micros // 1000) <= 1000
        assert (await engine.get_queue_stats()).running == 1
        release.set()
        assert (await engine.wait_for_execution(eid, timeout=10)).status == "completed"
        # The job's finish follows the execution's settling closely.
        await wait_until(not_owned, timeout=10, what="the job to be finished")
        assert not await redis.exists(owner_key, job_key_prefix + job_id)
        assert await redis.zscore(keys.running, job_id) is None
        await engine.purge()


async def test_job_of_a_dead_worker_runs_again_when_its_lease_expires(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    calls: list[Any] = []
    redis_ms: list[int] = []  # the Redis clock when the executor was entered

    async def record(ctx: ExecutionContext) -> Any:
        seconds, micros = await engine.queue.redis.time()
        redis_ms.append(seconds * 1000 + micros // 1000)
        calls.append(ctx.attempt)
        return "done"

    registry.register("record", record)
    await engine.register_workflow(ONE_NODE)
    eid = await engine.enqueue_workflow("one")
    # A worker that took the job and died: its lease is left to run out.
    claim = await engine.queue.claim("dead-worker", 1, lease_ms=700)
    job_id = engine.queue.job_id(NodeJob(eid, "one", 1, "only"))
    assert [j.job_id for j in claim.jobs] == [job_id]
    lease_ends = await engine.queue.redis.zscore(engine.queue.keys.running, job_id)
    assert lease_ends is not None
    await engine.start_workers(2)
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status == "completed"
    assert calls == [1]
    # Not taken while it was still leased to the dead worker: it ran once the lease had
    # run out, on the clock the lease is kept on (however slow or fast this machine is).
    assert redis_ms[0] >= lease_ends
    # The dead worker's late finish is refused: the job is no longer its own.
    await engine.queue.finish(claim.jobs[0])
    assert (await engine.get_queue_stats()).running == 0


async def test_an_executors_own_timeout_error_is_not_a_node_timeout(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    async def raises(ctx: ExecutionContext) -> None:
        raise TimeoutError("upstream API timed out")

    registry.register("record", raises)
    await engine.register_workflow(
        {"id": "one", "nodes": [{"id": "only", "type": "record", "timeoutMs": 5000}]}
    )
    await engine.start_workers(1)
    state = await engine.run_workflow("one", timeout=10)
    assert state.status == "failed"
    error = state.node_results["only"].error or ""
    assert "upstream API timed out" in error
    assert "timed out after 5000 ms" not in error


async def test_a_long_node_is_recorded_as_running_a_short_one_written_once(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    release = asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        await release.wait()
        return "done"

    registry.register("record", slow)
    await engine.register_workflow(ONE_NODE)
    await engine.start_workers(1)
    eid = await engine.enqueue_workflow("one")

    async def marked_running() -> bool:
        return (await engine.store.get_node_results(eid))["only"].status == "running"

    await wait_until(marked_running, timeout=10, what="the node recorded as running")
    node = (await engine.store.get_node_results(eid))["only"]
    assert node.attempts == 1
    assert node.started_at is not None
    release.set()
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.node_results["only"].attempts == 1
    assert state.node_results["only"].started_at == node.started_at


async def test_every_attempt_is_a_span_of_the_trace(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    async def flaky(ctx: ExecutionContext) -> str:
        if ctx.attempt == 1:
            raise RuntimeError("first try fails")
        return "ok"

    registry.register("record", flaky)
    await engine.register_workflow(
        {
            "id": "one",
            "nodes": [
                {
                    "id": "only",
                    "type": "record",
                    "retryPolicy": {"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 10}},
                }
            ],
        }
    )
    await engine.start_workers(1)
    state = await engine.run_workflow("one", timeout=10)
    assert state.status == "completed"
    spans = await engine.store.get_spans(state.execution_id)
    assert [(s.node_id, s.attempt, s.status) for s in spans] == [
        ("only", 1, "retrying"),
        ("only", 2, "succeeded"),
    ]
    first, second = spans
    assert first.error is not None
    assert "first try fails" in first.error
    assert first.traceback is not None
    assert "RuntimeError: first try fails" in first.traceback
    assert second.error is None
    assert all(s.worker_id and s.ended_at and s.ended_at >= s.started_at for s in spans)
    assert second.attributes["type"] == "record"


async def test_a_worker_never_runs_more_than_its_concurrency(
    engine: WorkflowEngine, registry: NodeRegistry
) -> None:
    """Nodes that defer themselves once (due at once: the same worker may take the job
    again in the call that ends its first delivery) and nodes that run: a worker of
    concurrency 3 never has more than 3 executors running, and ends with none held."""
    running = 0
    most = 0
    deferred: set[str] = set()

    async def bursty(ctx: ExecutionContext) -> int:
        nonlocal running, most
        if ctx.execution_id not in deferred:
            deferred.add(ctx.execution_id)
            ctx.rate_limit(1)
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.005)
        running -= 1
        return 1

    registry.register("record", bursty)
    await engine.register_workflow(ONE_NODE)
    await engine.start_workers(3)
    ids = await engine.enqueue_bulk("one", [None] * 40)
    for eid in ids:
        assert (await engine.wait_for_execution(eid, timeout=20)).status == "completed"
    assert 1 <= most <= 3
    [(worker, _)] = engine._workers

    async def no_task_left() -> bool:
        return not worker.tasks

    await wait_until(no_task_left, timeout=10, what="the worker's tasks to end")
    assert worker.tasks == {}
    assert worker._held == {}


async def test_a_finished_nodes_redelivery_sends_the_children_its_worker_never_sent(
    make_engine: Any,
) -> None:
    """A worker recorded a node's result (claiming its child) and died before the child's
    job went out; the lease put the node's job back. That duplicate delivery runs nothing
    and sends the child's job, long before the sweeper (an hour here) would."""
    registry = NodeRegistry()
    runs: list[str] = []

    async def step(ctx: ExecutionContext) -> str:
        runs.append(ctx.node_id)
        return ctx.node_id

    registry.register("step", step)
    engine: WorkflowEngine = await make_engine(
        registry, sweep_interval_seconds=3600, stale_after_seconds=3600
    )
    await engine.register_workflow(
        {
            "id": "pair",
            "nodes": [
                {"id": "a", "type": "step", "outputs": ["b"]},
                {"id": "b", "type": "step", "inputs": ["a"]},
            ],
        }
    )
    queue = engine.queue
    sends = (queue.enqueue_soon, queue.enqueue_batched)

    def lose_b_soon(jobs: Any, *, priority: int | None) -> None:  # the worker's path
        sends[0]([j for j in jobs if j.node_id != "b"], priority=priority)

    async def lose_b_batched(jobs: Any, *, priority: int | None) -> None:
        await sends[1]([j for j in jobs if j.node_id != "b"], priority=priority)

    queue.enqueue_soon = lose_b_soon  # type: ignore[method-assign]
    queue.enqueue_batched = lose_b_batched  # type: ignore[method-assign]
    await engine.start_workers()
    execution_id = await engine.enqueue_workflow("pair")

    async def a_done_b_claimed() -> bool:
        nodes = await engine.store.get_node_results(execution_id)
        return nodes["a"].status == "succeeded" and nodes["b"].status == "queued"

    await wait_until(a_done_b_claimed, timeout=10, what="a recorded, b claimed")
    # a's delivery ends in a later Redis call than its write: until it has, a's job still
    # exists there and sending it again would be a no-op.
    await wait_until(lambda: queue_is_empty(engine), timeout=10, what="a's delivery ended")
    queue.enqueue_soon, queue.enqueue_batched = sends  # type: ignore[method-assign]
    await engine.resend_node(execution_id, "a")  # what the lease does with a lost worker's job
    state = await engine.wait_for_execution(execution_id, timeout=20)
    assert state.status == "completed"
    assert runs == ["a", "b"]  # a did not run again


async def test_leftover_jobs_of_a_cancelled_execution_settle_it_no_more(
    make_engine: Any,
) -> None:
    """The jobs of nodes a cancel marked cancelled still reach a worker: they end there,
    without announcing the execution's end again (once per leftover job, it used to be)."""
    from spane_py.observability import events

    registry = NodeRegistry()

    async def step(ctx: ExecutionContext) -> None:
        return None

    registry.register("step", step)
    engine: WorkflowEngine = await make_engine(registry)
    await engine.register_workflow(
        {"id": "three", "nodes": [{"id": n, "type": "step"} for n in ("a", "b", "c")]}
    )
    seen: list[tuple[str, Any]] = []

    def sink(event: str, fields: Any) -> None:
        if event in (events.EXECUTION_SPAN, events.NODE_SPAN):
            seen.append((event, fields))

    events.add_sink(sink)
    try:
        execution_id = await engine.enqueue_workflow("three")
        await engine.cancel_execution(execution_id)
        settled_by_cancel = [e for e, _ in seen if e == events.EXECUTION_SPAN]
        await engine.start_workers()
        await wait_until(lambda: queue_is_empty(engine), timeout=10, what="the jobs ended")
    finally:
        events.remove_sink(sink)
    assert len(settled_by_cancel) == 1
    assert [e for e, _ in seen if e == events.EXECUTION_SPAN] == [events.EXECUTION_SPAN]
    state = await engine.get_execution(execution_id)
    assert state.status == "cancelled"


async def test_a_node_that_ends_after_its_cancel_has_one_span(make_engine: Any) -> None:
    """A cancel records the running node's span (cancelled); the node ending within the
    cancel grace adds no second span for the same attempt."""
    from spane_py.observability import events

    registry = NodeRegistry()
    entered, proceed = asyncio.Event(), asyncio.Event()

    async def slow(ctx: ExecutionContext) -> str:
        entered.set()
        await proceed.wait()  # ignores the cancel: ends within the grace
        return "late"

    registry.register("slow", slow)
    engine: WorkflowEngine = await make_engine(registry, cancel_grace_seconds=30)
    await engine.register_workflow({"id": "one-slow", "nodes": [{"id": "s", "type": "slow"}]})
    spans: list[Any] = []

    def sink(event: str, fields: Any) -> None:
        if event == events.NODE_SPAN:
            spans.append(fields["span"])

    events.add_sink(sink)
    try:
        await engine.start_workers()
        execution_id = await engine.enqueue_workflow("one-slow")
        await asyncio.wait_for(entered.wait(), 10)

        async def marked_running() -> bool:  # recorded as running (after a moment)
            nodes = await engine.store.get_node_results(execution_id)
            return nodes["s"].status == "running"

        await wait_until(marked_running, timeout=10, what="s recorded as running")
        await engine.cancel_execution(execution_id)
        proceed.set()
        await wait_until(lambda: queue_is_empty(engine), timeout=10, what="the job ended")
    finally:
        events.remove_sink(sink)
    assert [(s.node_id, s.status) for s in spans] == [("s", "cancelled")]
    trace = await engine.get_trace(execution_id)
    assert [s.status for s in trace.spans] == ["cancelled"]
