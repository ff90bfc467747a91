"""Retention while executions run (both stores): ``engine.prune()`` deletes exactly the
finished executions whose time is up, and nothing a running execution needs — the finished
child of a running parent stays — while other executions start, run and finish."""

from __future__ import annotations

import asyncio
from pathlib import Path

from spane_py import ExecutionContext, NodeRegistry, Retention
from spane_py.clock import SkippingClock
from spane_py.stores.base import PruneResult
from tests.integration._support import wait_until
from tests.integration.conftest import EngineFactory, StoreFactory

WORKFLOWS = [
    {"id": "quick", "nodes": [{"id": "q", "type": "quick"}]},
    {"id": "slow", "nodes": [{"id": "g", "type": "gate"}]},
    {"id": "child", "nodes": [{"id": "c", "type": "quick"}]},
    {
        "id": "parent",
        "nodes": [
            {"id": "s", "type": "sub-workflow", "config": {"workflow_id": "child"},
             "outputs": ["g"]},
            {"id": "g", "type": "gate"},
        ],
    },
    # Its own time: kept a day, over the engine's minute.
    {"id": "kept", "nodes": [{"id": "q", "type": "quick"}], "retention": {"completed": "1d"}},
]  # fmt: skip


async def test_prune_while_executions_run(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    gate = asyncio.Event()
    registry = NodeRegistry()

    async def quick(ctx: ExecutionContext) -> int:
        return 1

    async def wait_for_gate(ctx: ExecutionContext) -> int:
        await gate.wait()
        return 2

    registry.register("quick", quick)
    registry.register("gate", wait_for_gate)
    clock = SkippingClock()
    engine = await make_engine(
        registry, new_store(), clock=clock, retention=Retention(completed=60)
    )
    for definition in WORKFLOWS:
        await engine.register_workflow(definition)
    await engine.start_workers(8)

    old = [(await engine.run_workflow("quick", i, timeout=20)).execution_id for i in range(5)]
    kept = (await engine.run_workflow("kept", 0, timeout=20)).execution_id
    parent = await engine.enqueue_workflow("parent", 0)
    slow = [await engine.enqueue_workflow("slow", i) for i in range(3)]

    async def all_gated() -> bool:
        states = [await engine.get_execution(e) for e in (parent, *slow)]
        return all(s.node_results.get("g") and s.node_results["g"].status == "running"
                   for s in states)  # fmt: skip

    await wait_until(all_gated, timeout=20, what="the gated nodes to run")
    children = await engine.store.get_child_executions(parent)
    assert [c.status for c in children] == ["completed"]

    clock.skip(3600)  # the first ones are an hour old: past the engine's minute
    pruned, new = await asyncio.gather(
        engine.prune(),
        asyncio.gather(*(engine.run_workflow("quick", i, timeout=20) for i in range(5))),
    )
    assert pruned.executions == 5
    for eid in old:
        assert await engine.store.get_execution(eid) is None
        assert await engine.store.get_logs(eid) == []
    for eid in (kept, parent, children[0].execution_id, *slow, *(s.execution_id for s in new)):
        assert await engine.store.get_execution(eid) is not None, eid

    gate.set()  # the running ones finish, their child still there
    for eid in (parent, *slow):
        state = await engine.wait_for_execution(eid, timeout=20)
        assert state.status == "completed"
    # The child finished an hour ago: now that its parent has finished, it goes; the
    # others finished a moment ago.
    assert (await engine.prune()).executions == 1
    assert await engine.store.get_execution(children[0].execution_id) is None
    assert await engine.prune() == PruneResult()

    clock.skip(3600)  # all of them past a minute; "kept" not yet past its day
    assert (await engine.prune(dry_run=True)).executions == 9
    assert (await engine.prune()).executions == 9  # 5 new, 3 slow, the parent
    assert await engine.store.get_execution(kept) is not None
    clock.skip(86400)
    assert (await engine.prune()).executions == 1
    assert await engine.store.get_execution_count() == 0


async def test_workers_prune_on_their_own(
    make_engine: EngineFactory, new_store: StoreFactory
) -> None:
    registry = NodeRegistry()

    async def quick(ctx: ExecutionContext) -> int:
        return 1

    registry.register("quick", quick)
    clock = SkippingClock()
    engine = await make_engine(
        registry,
        new_store(),
        clock=clock,
        retention=Retention(completed="1m"),
        retention_interval_seconds=0.1,
    )
    await engine.register_workflow(WORKFLOWS[0])
    await engine.start_workers(2)
    for i in range(3):
        await engine.run_workflow("quick", i, timeout=20)
    await asyncio.sleep(0.3)  # the side task ran: nothing had expired yet
    assert await engine.store.get_execution_count() == 3
    clock.skip(120)

    async def none_left() -> bool:
        return await engine.store.get_execution_count() == 0

    await wait_until(none_left, timeout=10, what="the side task retention to prune")


async def test_archived_then_deleted_and_read_back(
    make_engine: EngineFactory, new_store: StoreFactory, tmp_path: Path
) -> None:
    registry = NodeRegistry()

    async def quick(ctx: ExecutionContext) -> dict[str, int]:
        ctx.log("shipping", order=ctx.input_data)
        return {"order": ctx.input_data}

    registry.register("quick", quick)
    clock = SkippingClock()
    archive = tmp_path / "archive"
    engine = await make_engine(
        registry,
        new_store(),
        clock=clock,
        retention=Retention(completed="1d"),
        archive_dir=archive,
        event_history=True,
    )
    await engine.register_workflow(WORKFLOWS[0])
    await engine.start_workers(2)
    ids = [(await engine.run_workflow("quick", i, timeout=20)).execution_id for i in range(3)]
    assert await engine.get_archived_execution(ids[0]) is None  # not archived yet
    assert await engine.get_events(ids[-1])  # what was emitted is written first
    clock.skip(2 * 86400)
    assert (await engine.prune()).executions == 3
    assert await engine.store.get_execution_count() == 0
    files = sorted(p.name for p in archive.iterdir())
    assert files == [f"{clock.now():%Y-%m-%d}.jsonl"]
    assert len((archive / files[0]).read_text().splitlines()) == 3

    for i, eid in enumerate(ids):
        got = await engine.get_archived_execution(eid)
        assert got is not None
        assert got["execution"]["execution_id"] == eid
        assert got["execution"]["status"] == "completed"
        assert got["execution"]["initial_data"] == i
        assert got["execution"]["output"] == {"order": i}
        assert [(n["node_id"], n["status"], n["output"]) for n in got["nodes"]] == [
            ("q", "succeeded", {"order": i})
        ]
        assert [entry["message"] for entry in got["logs"]] == ["shipping"]
        assert [s["node_id"] for s in got["spans"]] == ["q"]
        assert "execution.completed" in {e["type"] for e in got["events"]}
    assert await engine.get_archived_execution("0" * 8) is None
