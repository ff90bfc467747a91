"""A workflow's limit per concurrency key, end to end on both stores: executions of one key
never overlap while other keys proceed, a missing key is refused, cancel frees a slot, pause
holds it, a retry waits for one, and the limit combines with max_concurrency."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pytest

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.errors import InvalidEnqueueOptionsError
from tests.integration._support import node, wait_until, wait_until_idle, workflow
from tests.integration.conftest import EngineFactory, StoreFactory

PER_CUSTOMER = {"key": "input.customer", "max": 1}


@dataclass
class Runs:
    """When each execution's first node started and its last node ended, and the gates
    that hold the executions of a customer in their first node."""

    started: dict[str, float] = field(default_factory=dict)
    ended: dict[str, float] = field(default_factory=dict)
    customer: dict[str, str] = field(default_factory=dict)
    gates: defaultdict[str, asyncio.Event] = field(
        default_factory=lambda: defaultdict(asyncio.Event)
    )
    failing: set[int] = field(default_factory=set)  # the inputs' "n" whose first node fails
    running: int = 0
    peak: int = 0
    peak_of: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))
    running_of: defaultdict[str, int] = field(default_factory=lambda: defaultdict(int))

    def open(self, customer: str) -> None:
        self.gates[customer].set()

    def intervals(self, customer: str) -> list[tuple[float, float]]:
        ids = [e for e, c in self.customer.items() if c == customer]
        return sorted((self.started[e], self.ended[e]) for e in ids)

    def order(self, customer: str) -> list[str]:
        """Its executions in the order they started."""
        ids = [e for e, c in self.customer.items() if c == customer]
        return sorted(ids, key=lambda e: self.started[e])


def never_overlap(intervals: list[tuple[float, float]]) -> bool:
    return all(later[0] >= earlier[1] for earlier, later in itertools.pairwise(intervals))


@pytest.fixture
def runs() -> Runs:
    return Runs()


@pytest.fixture
def reg(runs: Runs) -> NodeRegistry:
    registry = NodeRegistry()

    async def first(ctx: ExecutionContext) -> Any:
        customer = ctx.input_data["customer"]
        runs.customer[ctx.execution_id] = customer
        runs.started[ctx.execution_id] = time.monotonic()
        runs.running += 1
        runs.running_of[customer] += 1
        runs.peak = max(runs.peak, runs.running)
        runs.peak_of[customer] = max(runs.peak_of[customer], runs.running_of[customer])
        try:
            if ctx.input_data.get("hold"):
                await runs.gates[customer].wait()
        finally:
            runs.running -= 1
            runs.running_of[customer] -= 1
        if ctx.input_data.get("n") in runs.failing:
            raise RuntimeError("payment refused")
        return ctx.input_data

    async def last(ctx: ExecutionContext) -> Any:
        runs.ended[ctx.execution_id] = time.monotonic()
        return ctx.input_data

    registry.register("first", first)
    registry.register("last", last)
    return registry


def orders(**extra: Any) -> dict[str, Any]:
    return workflow(
        "orders",
        node("take", "first"),
        node("ship", "last", "take"),
        **{"concurrency": PER_CUSTOMER, **extra},
    )


@pytest.fixture
async def engine(
    new_store: StoreFactory, make_engine: EngineFactory, reg: NodeRegistry
) -> WorkflowEngine:
    eng = await make_engine(reg, new_store(), sweep_interval_seconds=0.5, stale_after_seconds=2)
    await eng.start_workers(10)
    return eng


async def status(engine: WorkflowEngine, execution_id: str) -> str:
    return str((await engine.get_execution(execution_id)).status)


async def until_status(engine: WorkflowEngine, execution_id: str, wanted: str) -> None:
    async def reached() -> bool:
        return await status(engine, execution_id) == wanted

    await wait_until(reached, timeout=15, what=f"{execution_id} {wanted}")


async def test_one_execution_per_customer_at_a_time_while_others_proceed(
    engine: WorkflowEngine, runs: Runs
) -> None:
    await engine.register_workflow(orders())
    a = [await engine.enqueue_workflow("orders", {"customer": "A", "hold": True, "n": i})
         for i in range(3)]  # fmt: skip
    b = [await engine.enqueue_workflow("orders", {"customer": "B", "n": i}) for i in range(3)]
    # A's first holds A's slot: the other two wait, and every one of B's runs meanwhile.
    for eid in b:
        assert (await engine.wait_for_execution(eid, timeout=20)).status == "completed"
    assert [await status(engine, eid) for eid in a] == ["running", "queued", "queued"]
    stored = await engine.store.get_execution(a[1])
    assert stored is not None
    assert stored.concurrency_key == '"A"'
    runs.open("A")
    for eid in a:
        assert (await engine.wait_for_execution(eid, timeout=20)).status == "completed"
    assert never_overlap(runs.intervals("A"))
    assert never_overlap(runs.intervals("B"))
    assert runs.order("A") == a  # first in, first admitted
    assert runs.order("B") == b
    assert runs.peak_of["A"] == runs.peak_of["B"] == 1


async def test_many_executions_of_a_few_customers(engine: WorkflowEngine, runs: Runs) -> None:
    await engine.register_workflow(orders(concurrency={"key": "input.customer", "max": 2}))
    inputs = [{"customer": f"c{i % 3}", "n": i} for i in range(30)]
    ids = await engine.enqueue_bulk("orders", inputs)
    for eid in ids:
        assert (await engine.wait_for_execution(eid, timeout=30)).status == "completed"
    assert max(runs.peak_of.values()) <= 2
    for customer in ("c0", "c1", "c2"):
        # two slots: an execution starts only after the one two places before it ended
        spans = runs.intervals(customer)
        assert all(later[0] >= earlier[1] for earlier, later in zip(spans, spans[2:], strict=False))


async def test_combined_with_max_concurrency(engine: WorkflowEngine, runs: Runs) -> None:
    await engine.register_workflow(orders(max_concurrency=2))
    held = [await engine.enqueue_workflow("orders", {"customer": c, "hold": True})
            for c in ("A", "A", "B", "C")]  # fmt: skip

    async def two_running() -> bool:
        return runs.running == 2

    await wait_until(two_running, timeout=15, what="two running")
    # A's second waits for A; C waits for the workflow, though its key has room.
    assert [await status(engine, eid) for eid in held] == ["running", "queued", "running", "queued"]
    runs.open("B")
    await until_status(engine, held[3], "running")  # B ended: C takes its slot, not A's second
    assert await status(engine, held[1]) == "queued"
    runs.open("A")
    runs.open("C")
    for eid in held:
        assert (await engine.wait_for_execution(eid, timeout=20)).status == "completed"
    assert runs.peak == 2
    assert never_overlap(runs.intervals("A"))


async def test_an_input_without_the_key_is_refused_and_nothing_is_written(
    engine: WorkflowEngine,
) -> None:
    await engine.register_workflow(orders())
    with pytest.raises(InvalidEnqueueOptionsError, match=r"'input\.customer'"):
        await engine.enqueue_workflow("orders", {"client": "A"})
    with pytest.raises(InvalidEnqueueOptionsError, match=r"'input\.customer'"):
        await engine.enqueue_bulk("orders", [{"customer": "A"}, {"client": "B"}])
    await engine.register_workflow(
        workflow("tenants", node("take", "first"), concurrency={"key": "metadata.tenant", "max": 1})
    )
    with pytest.raises(InvalidEnqueueOptionsError, match="metadata has no value there"):
        await engine.enqueue_workflow("tenants", {"customer": "A"})
    assert await engine.store.get_execution_count() == 0
    eid = await engine.enqueue_workflow("tenants", {"customer": "A"}, metadata={"tenant": 7})
    record = await engine.store.get_execution(eid)
    assert record is not None
    assert record.concurrency_key == "7"


async def test_cancel_frees_the_slot(engine: WorkflowEngine, runs: Runs) -> None:
    await engine.register_workflow(orders())
    first = await engine.enqueue_workflow("orders", {"customer": "A", "hold": True})
    waiting = await engine.enqueue_workflow("orders", {"customer": "A", "n": 1})
    behind = await engine.enqueue_workflow("orders", {"customer": "A", "n": 2})
    await until_status(engine, first, "running")
    await engine.cancel_execution(behind)  # a queued one: cancelled where it waits
    assert await status(engine, waiting) == "queued"
    await engine.cancel_execution(first)
    assert (await engine.wait_for_execution(waiting, timeout=20)).status == "completed"
    assert await status(engine, first) == "cancelled"
    assert await status(engine, behind) == "cancelled"
    assert behind not in runs.started


async def test_pause_holds_the_slot_until_it_ends(engine: WorkflowEngine, runs: Runs) -> None:
    await engine.register_workflow(orders())
    first = await engine.enqueue_workflow("orders", {"customer": "A", "hold": True})
    second = await engine.enqueue_workflow("orders", {"customer": "A", "n": 1})
    await until_status(engine, first, "running")

    async def taking() -> bool:
        return first in runs.started

    await wait_until(taking, timeout=15, what="the first node to start")
    assert await engine.pause_execution(first)
    runs.open("A")  # its node finishes; the next one is parked: it stays paused
    await wait_until_idle(engine, timeout=20)
    assert await engine.lifecycle.admit("orders") == 0  # a paused execution holds its slot
    assert await status(engine, first) == "paused"
    assert await status(engine, second) == "queued"
    assert await engine.resume_execution(first)
    assert (await engine.wait_for_execution(second, timeout=20)).status == "completed"
    assert (await engine.get_execution(first)).status == "completed"
    assert never_overlap(runs.intervals("A"))


async def test_a_retry_waits_for_a_slot_and_a_replay_keeps_the_key(
    engine: WorkflowEngine, runs: Runs
) -> None:
    await engine.register_workflow(orders())
    runs.failing.add(0)
    failed = await engine.enqueue_workflow("orders", {"customer": "A", "n": 0})
    assert (await engine.wait_for_execution(failed, timeout=20)).status == "failed"
    holder = await engine.enqueue_workflow("orders", {"customer": "A", "hold": True, "n": 1})
    await until_status(engine, holder, "running")
    runs.failing.clear()
    await engine.retry_execution(failed)
    assert await status(engine, failed) == "queued"  # A's slot is taken
    runs.open("A")
    assert (await engine.wait_for_execution(failed, timeout=20)).status == "completed"
    state = await engine.get_execution(failed)
    assert state.node_results["take"].attempts >= 1
    assert runs.ended[holder] <= runs.started[failed]  # the retry ran after the holder ended
    replay = await engine.replay_execution(failed)
    record = await engine.store.get_execution(replay)
    assert record is not None
    assert record.concurrency_key == '"A"'
    assert (await engine.wait_for_execution(replay, timeout=20)).status == "completed"
