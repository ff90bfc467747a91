"""The event stream: ``engine.subscribe`` sees the engine's events, in order, filtered, and
none emitted after it returned is lost, even if it reads late."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import UTC, datetime

import pytest
from redis.asyncio import Redis

from spane_py import ConfigurationError, InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.observability.stream import StreamPublisher, subscribe
from tests.observability._support import (
    CHAIN,
    FAILING,
    FLAKY,
    collect_until_settled,
    names,
    register_types,
)


@pytest.fixture(autouse=True)
def _types(registry: NodeRegistry) -> None:
    register_types(registry)


async def wait_for_stream_to_hold(engine: WorkflowEngine, name: str, about: str) -> None:
    """Until the stream's last entry is ``name`` with ``about`` in its data (publishing
    is asynchronous: an event emitted is in Redis a few milliseconds later, so one emitted
    just before ``subscribe()`` may still reach the subscriber)."""
    deadline = time.monotonic() + 5
    key = f"{engine.key_prefix}:events"
    while time.monotonic() < deadline:
        last = await engine.queue.redis.xrevrange(key, count=1)
        entry = last[0][1][b"e"] if last else b""
        if f'"event":"{name}"'.encode() in entry and about.encode() in entry:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{name} of {about} never reached the stream")


async def test_no_event_is_lost_between_subscribe_and_the_first_read(
    engine: WorkflowEngine,
) -> None:
    await engine.register_workflow(CHAIN)
    sub = await engine.subscribe()
    await engine.start_workers()
    eid = await engine.enqueue_workflow("chain", {"x": 1})
    await engine.wait_for_execution(eid)
    # The execution is over before the subscriber reads anything: it still gets it all.
    seen = await collect_until_settled(sub, eid)
    await sub.aclose()
    assert names(seen) == [
        ("execution.started", None),
        ("node.started", "a"),
        ("node.completed", "a"),
        ("node.started", "b"),
        ("node.completed", "b"),
        ("execution.completed", None),
    ]
    assert {e.execution_id for e in seen} == {eid}
    assert {e.workflow_id for e in seen} == {"chain"}
    assert [e.status for e in seen] == [
        "running",
        "running",
        "succeeded",
        "running",
        "succeeded",
        "completed",
    ]
    assert seen[1].fields == {"attempt": 1}
    assert seen[0].fields == {"version": 1}
    now = datetime.now(UTC)
    assert all(e.at.tzinfo is not None and abs((now - e.at).total_seconds()) < 30 for e in seen)
    assert [e.at for e in seen] == sorted(e.at for e in seen)
    ids = [e.id for e in seen]
    assert len(set(ids)) == len(ids)


async def test_events_from_before_subscribe_are_not_delivered(engine: WorkflowEngine) -> None:
    await engine.register_workflow(CHAIN)
    await engine.start_workers()
    first = await engine.enqueue_workflow("chain", 1)
    await engine.wait_for_execution(first)
    # Its last events may still be in this process's buffer: subscribe() sends them first.
    async with await engine.subscribe() as sub:
        second = await engine.enqueue_workflow("chain", 2)
        seen = await collect_until_settled(sub, second)
    assert {e.execution_id for e in seen} == {second}
    assert seen[0].name == "execution.started"


async def test_after_zero_reads_what_the_stream_still_holds(engine: WorkflowEngine) -> None:
    await engine.register_workflow(CHAIN)
    await engine.start_workers()
    eid = await engine.enqueue_workflow("chain", 1)
    await engine.wait_for_execution(eid)
    async with await engine.subscribe(after="0") as sub:
        seen = await collect_until_settled(sub, eid)
    assert names(seen)[0] == ("workflow.registered", None)
    assert names(seen)[-1] == ("execution.completed", None)
    # Resuming after an entry id gives what follows it.
    async with await engine.subscribe(after=seen[2].id) as sub:
        again = await collect_until_settled(sub, eid)
    assert again == seen[3:]


async def test_failures_and_retries_are_events(engine: WorkflowEngine) -> None:
    await engine.register_workflow(FAILING)
    await engine.register_workflow(FLAKY)
    async with await engine.subscribe() as sub:
        await engine.start_workers()
        failing = await engine.enqueue_workflow("failing", 1)
        failed = await collect_until_settled(sub, failing)
        flaky = await engine.enqueue_workflow("flaky", 1)
        retried = await collect_until_settled(sub, flaky)
    assert names(failed)[-2:] == [("node.failed", "b"), ("execution.failed", None)]
    assert failed[-2].fields["error"] == "RuntimeError: boom"
    assert failed[-1].status == "failed"
    assert names(retried) == [
        ("execution.started", None),
        ("node.started", "f"),
        ("node.retrying", "f"),
        ("node.started", "f"),
        ("node.completed", "f"),
        ("execution.completed", None),
    ]
    assert retried[2].fields["attempt"] == 1
    assert retried[2].status == "retrying"
    assert retried[3].fields == {"attempt": 2}


async def test_subscriptions_filter_by_workflow_and_by_execution(
    engine: WorkflowEngine,
) -> None:
    await engine.register_workflow(CHAIN)
    await engine.register_workflow(FAILING)
    by_workflow = await engine.subscribe(workflow_id="failing")
    chain_id = await engine.enqueue_workflow("chain", 1)
    failing_id = await engine.enqueue_workflow("failing", 1)
    by_execution = await engine.subscribe(chain_id)
    await engine.start_workers()
    try:
        of_failing = await collect_until_settled(by_workflow, failing_id)
        of_chain = await collect_until_settled(by_execution, chain_id)
    finally:
        await by_workflow.aclose()
        await by_execution.aclose()
    assert {e.workflow_id for e in of_failing} == {"failing"}
    assert {e.execution_id for e in of_failing} == {failing_id}
    assert ("node.failed", "b") in names(of_failing)
    assert {e.execution_id for e in of_chain} == {chain_id}
    assert ("node.completed", "b") in names(of_chain)


async def test_control_actions_are_events(engine: WorkflowEngine) -> None:
    await engine.register_workflow(CHAIN)
    eid = await engine.enqueue_workflow("chain", 1)
    async with await engine.subscribe(eid) as sub:
        await engine.pause_execution(eid)
        await engine.resume_execution(eid)
        await engine.cancel_execution(eid, reason="no longer needed")
        seen = await collect_until_settled(sub, eid)
    assert [(e.name, e.status) for e in seen] == [
        ("execution.paused", "paused"),
        ("execution.resumed", "running"),
        ("execution.cancelled", "cancelled"),
    ]
    assert {e.workflow_id for e in seen} == {"chain"}
    assert seen[-1].fields == {"reason": "no longer needed"}


async def test_closing_ends_the_iteration(engine: WorkflowEngine) -> None:
    sub = await engine.subscribe()
    reader = asyncio.create_task(anext(sub))
    await asyncio.sleep(0.05)  # blocked in XREAD
    reader.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await reader
    await sub.aclose()
    with pytest.raises(StopAsyncIteration):
        await anext(sub)
    await sub.aclose()  # twice: fine


async def test_engines_in_one_process_keep_their_events_apart(
    engine: WorkflowEngine, redis_url: str, key_prefix: str
) -> None:
    registry = NodeRegistry()
    register_types(registry)
    other = WorkflowEngine(registry, redis_url=redis_url, key_prefix=f"{key_prefix}-other")
    await other.start()
    try:
        await engine.register_workflow(CHAIN)
        await engine.start_workers()
        eid = await engine.enqueue_workflow("chain", 1)
        await engine.wait_for_execution(eid)
        await wait_for_stream_to_hold(engine, "execution.completed", eid)
        assert await engine.queue.redis.exists(f"{key_prefix}-other:events") == 0
    finally:
        await other.purge()
        await other.close()


async def test_the_stream_can_be_turned_off(
    registry: NodeRegistry, redis_url: str, key_prefix: str
) -> None:
    async with WorkflowEngine(
        registry, InMemoryExecutionStore(), redis_url=redis_url, key_prefix=key_prefix,
        event_stream=False,
    ) as engine:  # fmt: skip
        try:
            await engine.register_workflow(CHAIN)
            await engine.start_workers()
            await engine.run_workflow("chain", 1)
            await flush_buffered_events(engine)
            assert await engine.queue.redis.exists(f"{key_prefix}:events") == 0
        finally:
            await engine.purge()


def test_the_length_cap_must_be_positive(registry: NodeRegistry) -> None:
    for bad in (0, -5, True, 2.5):
        with pytest.raises(ConfigurationError):
            WorkflowEngine(registry, event_stream_maxlen=bad)  # type: ignore[arg-type]


async def test_the_stream_is_capped(redis_url: str, key_prefix: str) -> None:
    redis = Redis.from_url(redis_url)
    key = f"{key_prefix}:events"
    try:
        publisher = StreamPublisher(redis, key, maxlen=10)
        for i in range(2000):
            publisher("node.started", {"execution_id": str(i)})
            if i % 100 == 0:
                await asyncio.sleep(0.01)
        await publisher.close()
        # One entry per send, holding its events; the stream keeps about 10 events' worth
        # of entries (MAXLEN ~ trims whole stream nodes of 100 entries).
        entries = await redis.xrange(key)
        kept = sum(len(data[b"e"].split(b"\n")) for _, data in entries)
        assert 10 <= kept < 2000
        assert len(entries) < 200
        assert entries[-1][1][b"e"].split(b"\n")[-1].find(b'"1999"') > 0
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_one_entry_per_send_and_resuming_inside_it(redis_url: str, key_prefix: str) -> None:
    """A send is one XADD however many events it holds; an event's id is its place in
    that entry, and a subscription resumes after any event id or entry id."""
    redis = Redis.from_url(redis_url)
    key = f"{key_prefix}:events"
    try:
        publisher = StreamPublisher(redis, key)
        for i in range(5):
            publisher("node.started", {"execution_id": f"e{i}"})
        await publisher.flush()
        [(entry, _)] = await redis.xrange(key)
        entry_id = entry.decode()
        sub = await subscribe(lambda: Redis.from_url(redis_url), key, after="0")
        async with sub:
            seen = [await anext(sub) for _ in range(5)]
        assert [e.id for e in seen] == [f"{entry_id}.{i}" for i in range(5)]
        assert [e.execution_id for e in seen] == [f"e{i}" for i in range(5)]
        publisher("node.started", {"execution_id": "e5"})
        await publisher.close()
        for after, first in ((seen[1].id, "e2"), (seen[4].id, "e5"), (entry_id, "e5")):
            async with await subscribe(lambda: Redis.from_url(redis_url), key, after=after) as s:
                assert (await anext(s)).execution_id == first
        for bad in ("yesterday", "1-x", "1-0.x", "0.1", ""):
            with pytest.raises(ConfigurationError, match="after must be an event id"):
                await subscribe(lambda: Redis.from_url(redis_url), key, after=bad)
    finally:
        await redis.delete(key)
        await redis.aclose()


async def test_an_unreachable_redis_costs_a_warning_not_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    redis = Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    publisher = StreamPublisher(redis, "nowhere:events", flush_interval=0.001)
    try:
        publisher("node.started", {"execution_id": "e1"})
        deadline = time.monotonic() + 10
        while "could not publish 1 event(s) to nowhere:events" not in caplog.text:
            assert time.monotonic() < deadline, "the failed publish was never logged"
            await asyncio.sleep(0.01)
    finally:
        await publisher.close()
        await redis.aclose()


async def test_a_subscription_survives_a_lost_connection(
    engine: WorkflowEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    await engine.register_workflow(CHAIN)
    sub = await engine.subscribe()
    client = sub._client
    assert client is not None
    real_xread = client.xread
    failures = [ConnectionError("connection reset"), OSError("network down")]

    async def flaky_xread(*args: object, **kwargs: object) -> object:
        if failures:
            raise failures.pop(0)
        return await real_xread(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(client, "xread", flaky_xread)
    await engine.start_workers()
    eid = await engine.enqueue_workflow("chain", 1)
    try:
        seen = await collect_until_settled(sub, eid)
    finally:
        await sub.aclose()
    assert names(seen)[0] == ("execution.started", None)
    assert len(seen) == 6
    assert failures == []


async def test_a_purge_leaves_no_stream_behind(engine: WorkflowEngine) -> None:
    await engine.register_workflow(CHAIN)
    await engine.start_workers()
    await engine.run_workflow("chain", 1)
    await engine.stop_workers()
    key = f"{engine.key_prefix}:events"
    assert 0 < await engine.queue.redis.pttl(key) <= 7 * 24 * 3600 * 1000  # idle: expires
    # Events still buffered go out before the purge, not after it.
    await engine.purge()
    await flush_buffered_events(engine)  # nothing is left to write
    assert await engine.queue.redis.exists(key) == 0


async def flush_buffered_events(engine: WorkflowEngine) -> None:
    """Write out what the engine's event stream holds back now (what a purge does first):
    no sleep needed to see whether anything was (wrongly) left to write."""
    for flush in engine.queue.before_purge:
        await flush()
