"""Rate limits, ``ctx.rate_limit`` holds and circuit breakers, through real workers on a
real Redis (in-process; tests/multiprocess runs them across worker processes).

Times are the executors' own clock readings (``Recorder``). The limiter admits on the
Redis clock and the executor reads its clock a moment later — by a varying fraction of a
millisecond to a few ms on a busy event loop — so window checks allow ``JITTER``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest

from spane_py import (
    CircuitBreakerPolicy,
    ConfigurationError,
    ExecutionContext,
    ExecutionStatus,
    InMemoryExecutionStore,
    NodeRegistry,
    WorkflowEngine,
    error_result,
)
from spane_py.observability import events
from spane_py.traffic.control import TrafficControl
from tests.integration._support import Recorder, node, queue_is_empty, wait_until, workflow
from tests.integration.conftest import EngineFactory

JITTER = 0.02
# A call admitted before the breaker opened may reach the executor this much later on a busy
# machine (the admission and the executor's start are separate steps of its process).
LATE_START = 0.1


def most_in_window(times: list[float], window: float) -> int:
    """The largest number of ``times`` inside any window ``window`` seconds long."""
    ordered = sorted(times)
    best, lo = 0, 0
    for hi, t in enumerate(ordered):
        while t - ordered[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


class Events(logging.Handler):
    """The spane_py events emitted in this process, with their monotonic times."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.seen: list[tuple[float, str, dict[str, Any]]] = []

    def emit(self, record: logging.LogRecord) -> None:
        name = getattr(record, "event", None)
        if isinstance(name, str):
            self.seen.append((time.monotonic(), name, getattr(record, "spane_fields", {})))

    def times(self, name: str) -> list[float]:
        return [t for t, n, _ in self.seen if n == name]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [f for _, n, f in self.seen if n == name]


@pytest.fixture
def seen() -> Iterator[Events]:
    handler = Events()
    logger = logging.getLogger("spane_py.events")
    old = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old)


async def ok(ctx: ExecutionContext) -> Any:
    return ctx.input_data


def one_node(workflow_id: str, node_type: str, **extra: Any) -> dict[str, Any]:
    return workflow(workflow_id, node("n", node_type, **extra))


async def completed(engine: WorkflowEngine, ids: list[str], timeout: float = 20.0) -> None:
    for eid in ids:
        state = await engine.wait_for_execution(eid, timeout=timeout)
        assert state.status is ExecutionStatus.COMPLETED, (state.status, state.error)


# Rate limits ------------------------------------------------------------------------------


async def test_a_rate_limited_type_is_deferred_not_failed_and_never_exceeds_its_limit(
    make_engine: EngineFactory, rec: Recorder, seen: Events
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "api", ok)
    registry.register("api", registry.get("api").executor, rate_limit=(5, 0.5), replace=True)
    engine = await make_engine(registry)
    await engine.register_workflow(one_node("limited", "api"))
    await engine.start_workers(concurrency=20)
    started = time.monotonic()
    ids = await engine.enqueue_bulk("limited", list(range(20)))
    await completed(engine, ids)
    took = time.monotonic() - started
    times = [c.at for c in rec.calls]
    assert len(times) == 20  # each node called once: a deferral is not a call
    assert most_in_window(times, 0.5 - JITTER) <= 5
    assert took >= 1.4  # 5 at once, then 15 more at 10/s
    # Steady state: one call per 0.1 s after the first burst.
    ordered = sorted(times)
    rate = (len(ordered) - 6) / (ordered[-1] - ordered[5])
    assert 9.0 <= rate <= 11.0, rate
    for eid in ids:  # deferrals count no attempt
        assert (await engine.get_execution(eid)).node_results["n"].attempts == 1
    limited = seen.of(events.NODE_RATE_LIMITED)
    assert len(limited) >= 15
    assert {f["reason"] for f in limited} == {"type"}
    assert engine.traffic_stats()[events.NODE_RATE_LIMITED]["api"] == len(limited)
    # Deferred nodes came back one slot apart, not all at once: few were refused twice.
    assert len(limited) < 15 * 2


async def test_a_deferred_node_gives_its_worker_slot_up(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "api", ok)
    registry.register("api", registry.get("api").executor, rate_limit=(1, 1.0), replace=True)
    rec.register(registry, "free", ok)
    engine = await make_engine(registry)
    await engine.register_workflow(one_node("limited", "api"))
    await engine.register_workflow(one_node("unlimited", "free"))
    await engine.start_workers(concurrency=1)  # one slot: a waiting node would block it
    first, second = await engine.enqueue_bulk("limited", [1, 2])
    await wait_until(lambda: _has_calls(rec, 1), what="the first limited node")
    other = await engine.enqueue_workflow("unlimited", 3)
    await completed(engine, [first, other], timeout=5)
    # The free node ran while the second limited one waited for its slot.
    assert (await engine.get_execution(second)).status is ExecutionStatus.RUNNING
    await completed(engine, [second], timeout=5)
    calls = {c.input_data: c.at for c in rec.calls}
    assert calls[3] < calls[2]
    assert calls[2] - calls[1] >= 1.0 - JITTER


async def test_a_node_cancelled_while_deferred_never_runs(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "api", ok)
    registry.register("api", registry.get("api").executor, rate_limit=(1, 2.0), replace=True)
    engine = await make_engine(registry)
    await engine.register_workflow(one_node("limited", "api"))
    await engine.start_workers()
    ids = await engine.enqueue_bulk("limited", [1, 2])
    # Both nodes ask for the one call of the window at once: either may get it.
    await wait_until(lambda: _has_calls(rec, 1), timeout=20, what="the first call")
    ran = rec.calls[0].execution_id
    (second,) = [i for i in ids if i != ran]
    await completed(engine, [ran])
    assert await engine.cancel_execution(second)  # its node waits in the scheduled set
    await wait_until(lambda: queue_is_empty(engine), timeout=20, what="the deferred job's end")
    assert [c.execution_id for c in rec.calls] == [ran]  # it came back, and was dropped
    state = await engine.get_execution(second)
    assert state.status is ExecutionStatus.CANCELLED
    assert state.node_results["n"].status.value == "cancelled"


async def _has_calls(rec: Recorder, n: int) -> bool:
    return len(rec.calls) >= n


async def test_a_type_without_limits_costs_no_redis_round_trip(
    make_engine: EngineFactory, rec: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "free", ok)
    engine = await make_engine(registry)
    asked: list[str] = []

    async def spy(self: Any, node_type: str, *args: Any, **kwargs: Any) -> Any:
        asked.append(node_type)
        raise AssertionError("admission asked Redis for a type without limits")

    monkeypatch.setattr(type(engine.traffic.admitter), "admit", spy)
    await engine.register_workflow(
        workflow("chain", node("a", "free"), node("b", "free", "a"), node("c", "free", "b"))
    )
    await engine.start_workers()
    await completed(engine, [await engine.enqueue_workflow("chain", 1)])
    assert asked == []
    assert len(rec.calls) == 3
    assert [
        k async for k in engine.queue.redis.scan_iter(match=f"{engine.key_prefix}:traffic*")
    ] == []


async def test_the_global_limit_counts_node_starts_of_every_type(
    make_engine: EngineFactory, rec: Recorder, seen: Events
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "a", ok)
    rec.register(registry, "b", ok)
    engine = await make_engine(registry, global_rate_limit=(4, 0.4))
    nodes = [node("root", "a")]
    nodes += [node(f"x{i}", "ab"[i % 2], "root") for i in range(11)]
    nodes += [node("pause", "delay", "root", config={"duration": 0})]  # built-in: not counted
    await engine.register_workflow(workflow("wide", *nodes))
    await engine.start_workers(concurrency=20)
    await completed(engine, [await engine.enqueue_workflow("wide", 0)])
    times = [c.at for c in rec.calls]
    assert len(times) == 12
    assert most_in_window(times, 0.4 - JITTER) <= 4
    assert max(times) - min(times) >= 0.8 - JITTER  # 12 starts at 4 per 0.4 s
    assert {f["reason"] for f in seen.of(events.NODE_RATE_LIMITED)} == {"global"}
    assert all(f["node_type"] in ("a", "b") for f in seen.of(events.NODE_RATE_LIMITED))


async def test_map_items_obey_their_types_rate_limit(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    registry = NodeRegistry()
    rec.register(registry, "api", ok)
    registry.register("api", registry.get("api").executor, rate_limit=(3, 0.3), replace=True)
    engine = await make_engine(registry)
    await engine.register_workflow(
        one_node("fan", "map", config={"nodeType": "api", "concurrency": 8})
    )
    await engine.start_workers()
    state = await engine.run_workflow("fan", list(range(9)), timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n"].data == list(range(9))
    times = [c.at for c in rec.calls]
    assert len(times) == 9
    assert most_in_window(times, 0.3 - JITTER) <= 3
    assert max(times) - min(times) >= 0.6 - JITTER


# ctx.rate_limit ------------------------------------------------------------------------------


async def test_ctx_rate_limit_defers_without_an_attempt_and_holds_the_type_in_every_engine(
    make_engine: EngineFactory, rec: Recorder, key_prefix: str, seen: Events
) -> None:
    """Two engines on one prefix and one store stand for two worker processes: a hold set
    in one reaches the other through Redis (pub/sub), for a type with no limit at all."""
    limited_once: set[str] = set()

    async def api(ctx: ExecutionContext) -> Any:
        if ctx.input_data == "first" and not limited_once:
            limited_once.add(ctx.execution_id)
            ctx.rate_limit(600)
        return ctx.input_data

    registry = NodeRegistry()
    rec.register(registry, "api", api)
    store = InMemoryExecutionStore()
    one = await make_engine(registry, store, key_prefix=key_prefix)
    two = await make_engine(registry, store, key_prefix=key_prefix)
    await one.register_workflow(one_node("call", "api"))
    await one.start_workers()
    await two.start_workers()

    async def both_listening() -> bool:  # from now on, a hold announced reaches both
        [(_, listeners)] = await one.queue.redis.pubsub_numsub(one.traffic.keys.channel)
        return int(listeners) == 2

    await wait_until(both_listening, what="both engines' traffic listeners subscribed")
    first = await one.enqueue_workflow("call", "first")
    await wait_until(lambda: _has_calls(rec, 1), what="the rate-limited call")
    others = await one.enqueue_bulk("call", ["second", "third", "fourth"])
    await completed(one, [first, *others])
    calls = rec.calls
    t0 = calls[0].at
    assert calls[0].input_data == "first"
    assert [c for c in calls[1:] if c.at < t0 + 0.6 - JITTER] == []  # all held back
    assert sorted(c.input_data for c in calls[1:]) == ["first", "fourth", "second", "third"]
    assert (await one.get_execution(first)).node_results["n"].attempts == 1
    reasons = [f["reason"] for f in seen.of(events.NODE_RATE_LIMITED)]
    assert reasons.count("executor") == 1
    assert reasons.count("blocked") >= 3


async def test_ctx_rate_limit_after_the_node_was_marked_running_counts_no_attempt(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    limited_at: list[float] = []

    async def slow_then_limited(ctx: ExecutionContext) -> Any:
        if len(rec.calls) == 1:
            # Past running_mark_delay: limited once the node is recorded as running.
            await wait_until(
                lambda: _node_status(engine, ctx.execution_id, "running"),
                timeout=10,
                what="the node recorded as running",
            )
            ctx.log("info", "service said 429")
            limited_at.append(time.monotonic())
            ctx.rate_limit(200)
        return "done"

    registry = NodeRegistry()
    rec.register(registry, "api", slow_then_limited)
    engine = await make_engine(registry)
    await engine.register_workflow(one_node("call", "api"))
    await engine.start_workers()
    eid = await engine.enqueue_workflow("call")
    state = await engine.wait_for_execution(eid, timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n"].attempts == 1
    assert len(rec.calls) == 2
    assert rec.calls[1].attempt == 1
    assert rec.calls[1].at - limited_at[0] >= 0.2 - JITTER  # after the hold
    assert [log.message for log in await engine.store.get_logs(eid)] == ["service said 429"]


async def _node_status(engine: WorkflowEngine, eid: str, status: str) -> bool:
    result = (await engine.get_execution(eid)).node_results.get("n")
    return result is not None and result.status.value == status


async def test_ctx_rate_limit_in_a_map_item_retries_the_item_after_the_hold(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    async def api(ctx: ExecutionContext) -> Any:
        if ctx.input_data == 0 and len(rec.of("n")) == 1:
            ctx.rate_limit(300)
        return ctx.input_data * 10

    registry = NodeRegistry()
    rec.register(registry, "api", api)
    engine = await make_engine(registry)
    await engine.register_workflow(one_node("fan", "map", config={"nodeType": "api"}))
    await engine.start_workers()
    state = await engine.run_workflow("fan", [0, 1, 2], timeout=10)
    assert state.status is ExecutionStatus.COMPLETED
    assert state.node_results["n"].data == [0, 10, 20]
    assert state.node_results["n"].attempts == 1
    retried = [c for c in rec.calls if c.input_data == 0]
    assert len(retried) == 2
    assert retried[1].at - retried[0].at >= 0.3 - JITTER


async def test_a_hold_set_before_a_process_listened_is_loaded_when_it_does(
    redis_url: str, make_engine: EngineFactory
) -> None:
    engine = await make_engine()
    held = await engine.traffic.block("api", 5_000)
    assert 4_900 <= held <= 5_000
    assert await engine.traffic.block("api", 100) > 4_000  # a shorter hold changes nothing
    late = TrafficControl(engine.queue.redis, prefix=engine.key_prefix, global_limit=None)
    assert late.blocks.local_wait_ms("api") == 0
    late.listen()
    try:
        await wait_until(
            lambda: _async(late.blocks.local_wait_ms("api") > 4_000), what="the hold loaded"
        )
    finally:
        await late.close()


async def _async(value: bool) -> bool:
    return value


# Circuit breakers ------------------------------------------------------------------------------


async def test_a_breaker_opens_stops_calls_half_opens_and_closes(
    make_engine: EngineFactory, rec: Recorder, seen: Events
) -> None:
    failing = True

    async def service(ctx: ExecutionContext) -> Any:
        if failing:
            raise ConnectionError("service down")
        return "up"

    registry = NodeRegistry()
    rec.register(registry, "svc", service)
    breaker = CircuitBreakerPolicy(
        failure_threshold=2, window_seconds=5, open_seconds=0.3, half_open_probes=1
    )
    registry.register("svc", registry.get("svc").executor, circuit_breaker=breaker, replace=True)
    engine = await make_engine(registry)
    retry = {"max_attempts": 50, "backoff": {"type": "fixed", "delay": 20}}
    await engine.register_workflow(one_node("calls", "svc", retry_policy=retry))
    await engine.start_workers()
    ids = await engine.enqueue_bulk("calls", [1, 2, 3, 4])
    await wait_until(lambda: _async(len(seen.times(events.BREAKER_OPENED)) >= 3), timeout=5)
    assert (await engine.breaker_state("svc")).state in ("open", "half_open")
    failing = False
    await completed(engine, ids, timeout=10)
    assert (await engine.breaker_state("svc")).state == "closed"

    opened = seen.times(events.BREAKER_OPENED)
    half = seen.times(events.BREAKER_HALF_OPEN)
    closed = seen.times(events.BREAKER_CLOSED)
    assert len(closed) == 1
    assert len(half) == len(opened)
    # While open (from each opening to the next half-open) nothing calls the service,
    # apart from calls that were already under way when it opened. The times are when this
    # process saw the events, which a busy machine delays: the half-open is no sooner than
    # 0.3 s after the opening by Redis's clock, so no sooner than 0.3 s after the first
    # call since the previous half-open (the call whose failure opened it is among them).
    previous = float("-inf")
    for t_open, t_half in zip(opened, half, strict=True):
        first = min(c.at for c in rec.calls if previous < c.at < t_open)
        assert t_half - first >= 0.3
        during = [c for c in rec.calls if t_open + LATE_START < c.at < t_half]
        assert during == []
        previous = t_half
    # Half-open: one probe at a time; each failed probe opened it again. (The probe that
    # closed it is followed at once by the waiting nodes, maybe before its process has
    # announced the closing: that last window holds the probe and more.)
    for t_half, t_next in zip(half, opened[1:], strict=False):
        assert len([c for c in rec.calls if t_half <= c.at <= t_next]) == 1
    assert [c for c in rec.calls if half[-1] <= c.at <= closed[0]]
    rejected = seen.of(events.BREAKER_REJECTED)
    assert rejected
    assert all(f["on_open"] == "wait" for f in rejected)
    assert engine.traffic_stats()[events.BREAKER_CLOSED] == {"svc": 1}
    # Waiting on an open breaker counted no attempt: only real calls did.
    attempts = [(await engine.get_execution(e)).node_results["n"].attempts for e in ids]
    assert sum(attempts) == len(rec.calls)


async def test_a_breaker_that_fails_fast_fails_the_node_with_circuit_breaker_open_error(
    make_engine: EngineFactory, rec: Recorder
) -> None:
    async def service(ctx: ExecutionContext) -> Any:
        return error_result("service refused")  # an unsuccessful result is a failure too

    registry = NodeRegistry()
    rec.register(registry, "svc", service)
    breaker = CircuitBreakerPolicy(failure_threshold=1, open_seconds=30, on_open="fail")
    registry.register("svc", registry.get("svc").executor, circuit_breaker=breaker, replace=True)
    registry.register("other", ok)
    engine = await make_engine(registry)
    await engine.register_workflow(
        one_node("calls", "svc", retry_policy={"max_attempts": 2, "backoff": {"delay": 10}})
    )
    await engine.start_workers()
    first = await engine.run_workflow("calls", 1, timeout=5)
    assert first.status is ExecutionStatus.FAILED  # an unsuccessful result is not retried
    assert len(rec.calls) == 1
    assert first.node_results["n"].error == "service refused"
    state = await engine.breaker_state("svc")
    assert state.state == "open"
    assert state.open_until is not None
    # Both attempts fail fast, through the retry policy; the service is not called.
    second = await engine.run_workflow("calls", 2, timeout=5)
    assert second.status is ExecutionStatus.FAILED
    assert len(rec.calls) == 1
    assert second.node_results["n"].attempts == 2
    error = second.node_results["n"].error or ""
    assert "the circuit breaker of node type 'svc' is open" in error
    (dlq, *_) = await engine.get_dlq_items()
    assert dlq.execution_id == second.execution_id
    assert "circuit breaker" in dlq.error
    with pytest.raises(ConfigurationError, match="node type 'other' has no circuit breaker"):
        await engine.breaker_state("other")
    await engine.reset_breaker("svc")  # an operator closes it
    assert (await engine.breaker_state("svc")).state == "closed"
    third = await engine.run_workflow("calls", 3, timeout=5)
    assert third.node_results["n"].error == "service refused"
    assert len(rec.calls) == 2


async def test_breaker_state_machine_through_the_scripts(make_engine: EngineFactory) -> None:
    """Admission and recording directly: thresholds, probes, probe leases."""
    engine = await make_engine()
    traffic = engine.traffic
    policy = CircuitBreakerPolicy(
        failure_threshold=3, window_seconds=10, open_seconds=0.2, half_open_probes=2
    )

    async def admit(member: str, lease_ms: int | None = None) -> Any:
        return await traffic.admit(
            "svc", member, rate_limit=None, breaker=policy, lease_ms=lease_ms
        )

    for i in range(2):
        await traffic.settle(await admit(f"m{i}"), "fail")
    assert (await traffic.breaker_state("svc", policy)).failures == 2
    await traffic.settle(await admit("m2"), "ok")  # a success does not reset the count
    await traffic.settle(await admit("m3"), "fail")
    state = await traffic.breaker_state("svc", policy)
    assert state.state == "open"
    assert state.failures == 0
    refused = await admit("m4")
    assert refused.code == "open"
    assert 0 < refused.wait_ms <= 200
    await asyncio.sleep(refused.wait_ms / 1000 + 0.01)
    p1, p2 = await admit("p1"), await admit("p2")
    assert (p1.admitted, p1.probe, p1.event, p2.probe) == (True, True, "half_open", True)
    full = await admit("m5")
    assert full.code == "probing"
    assert full.wait_ms == 200
    await traffic.settle(p1, "ok")
    assert (await traffic.breaker_state("svc", policy)).state == "half_open"
    await traffic.settle(p2, "ok")
    assert (await traffic.breaker_state("svc", policy)).state == "closed"
    # A failed probe opens it again; a probe that never reports frees its slot at its lease.
    for i in range(3):
        await traffic.settle(await admit(f"f{i}"), "fail")
    await asyncio.sleep(0.21)
    lost = await admit("lost", lease_ms=1000)  # long enough for a busy machine's next call
    other = await admit("other", lease_ms=1000)
    assert lost.probe
    assert other.probe
    assert (await admit("x")).code == "probing"
    await asyncio.sleep(1.01)
    again = await admit("again")
    assert again.probe  # the lost probes' leases ended
    await traffic.settle(again, "fail")
    assert (await traffic.breaker_state("svc", policy)).state == "open"
    stats = engine.traffic_stats()
    assert stats[events.BREAKER_OPENED]["svc"] == 3  # twice from closed, once from a probe
    assert stats[events.BREAKER_CLOSED]["svc"] == 1


async def test_rate_limit_admission_spreads_the_waiting_nodes(make_engine: EngineFactory) -> None:
    """The limiter directly: refused newcomers get turns one interval apart; a node that
    comes back with its turn and is refused again waits only for the next free slot."""
    from spane_py import RateLimit

    engine = await make_engine()
    traffic = engine.traffic
    limit = RateLimit(3, 0.6)  # one slot every 200 ms

    async def admit(member: str) -> Any:
        return await traffic.admit("api", member, rate_limit=limit, breaker=None)

    async def turn(member: str) -> tuple[Any, float, float]:
        """The answer and the earliest and latest local time (ms) its turn can stand for:
        Redis answered ``wait_ms`` at some moment between sending and receiving, so the
        check holds however slow this machine is."""
        sent = time.monotonic() * 1000
        answer = await admit(member)
        received = time.monotonic() * 1000
        return answer, sent + answer.wait_ms, received + answer.wait_ms

    t0 = time.monotonic() * 1000
    assert all([(await admit(f"a{i}")).admitted for i in range(3)])
    t1 = time.monotonic() * 1000
    turns = [await turn(f"w{i}") for i in range(4)]
    waits = [a.wait_ms for a, _, _ in turns]
    # The first turn: when the first start leaves the 600 ms window.
    assert t0 + 600 - 5 <= turns[0][2]
    assert turns[0][1] <= t1 + 600 + 5
    for (_, lo_a, hi_a), (_, lo_b, hi_b) in itertools.pairwise(turns):
        assert lo_b - hi_a - 10 <= 200 <= hi_b - lo_a + 10  # one turn each, 200 ms apart
    again, lo, hi = await turn("w3")  # w3 asks again at once: no new turn, the earliest slot
    assert again.code == "type"
    assert lo - 10 <= turns[0][2]
    assert turns[0][1] <= hi + 10
    # Turns are only when to come back: a slot that is free is used by whoever asks
    # (the three first starts all leave the window now).
    await asyncio.sleep(waits[0] / 1000 + 0.01)
    assert (await admit("w0")).admitted
    assert (await admit("newcomer")).admitted
