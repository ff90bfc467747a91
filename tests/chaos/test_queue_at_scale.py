"""The queue core (issue 11) with real worker processes: many running jobs do not slow or
stall new work, and a node that kills its worker is found without blaming its neighbours.

* 2,500 nodes run at once (long sleeps) on one worker: new executions still start within
  a second, on that worker while it has room and on an idle second worker once it is full
  (claiming pops pending jobs only; it never walks past running ones).
* A poison node (its code ends its process) beside 60 healthy executions on three workers
  that are restarted as they die: every job of a lost worker runs next time alone, so the
  poison node's later deaths are its own; after ``max_lost_deliveries`` of them it fails
  into the DLQ, and every healthy execution completes.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from pathlib import Path

import asyncpg
import pytest

from tests.chaos._checks import starts_of, status_counts, wait_until
from tests.chaos.app import chain, read_events
from tests.chaos.conftest import CHAOS_APP, MakeProducer
from tests.multiprocess.conftest import WorkerProcess, Workers

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

HELD = 2500
ROOM = 50  # the first worker's free slots beside the held nodes
PROBES = 5
# Generous bounds, so that a busy machine cannot fail them: the stall this guards against
# kept new executions waiting until held nodes ended (120 s here); on a quiet machine they
# start in tens of milliseconds (benchmarks/ measures it). The worst probe may meet a CPU
# stall of the shared machine (the held worker keeps 2,500 tasks and their leases).
START_WITHIN_S = 5.0
OUTLIER_S = 15.0


async def probe_starts(
    producer: object, record: Path, workflow_id: str, count: int
) -> list[tuple[float, int]]:
    """Start ``count`` executions one after another; (seconds to start, pid) of each."""
    out = []
    for _ in range(count):
        t0 = time.time()
        eid = await producer.enqueue_workflow(workflow_id)  # type: ignore[attr-defined]
        deadline = time.monotonic() + 30
        while not (found := starts_of(str(record), eid)):
            if time.monotonic() > deadline:
                raise AssertionError(f"{eid} did not start within 30 s")
            await asyncio.sleep(0.01)
        out.append((found[0].at - t0, found[0].pid))
    return out


@pytest.mark.timeout(300)
async def test_new_executions_start_at_once_beside_2500_running_nodes(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    [busy] = workers.start(1, concurrency=HELD + ROOM, app=CHAOS_APP, MP_POOL_SIZE="4")
    producer = await make_producer()
    await producer.register_workflow(chain("ch-held", 1, sleepMs=[120_000, 120_000]))
    await producer.register_workflow(chain("ch-quick", 1))
    await workers.wait_ready([busy])
    await producer.enqueue_bulk("ch-held", [None] * HELD)

    def started() -> int:
        return sum(1 for e in read_events(str(record_path)) if e.event == "start")

    async def all_held() -> bool:
        return started() >= HELD

    await wait_until(all_held, timeout=120, what=f"{HELD} held nodes started", every=0.5)
    assert (await producer.get_queue_stats()).running == HELD

    # The busy worker has room: new executions start there at once.
    on_busy = await probe_starts(producer, record_path, "ch-quick", PROBES)
    assert {pid for _, pid in on_busy} == {busy.pid}

    # Fill it up; an idle second worker takes the new executions.
    await producer.enqueue_bulk("ch-held", [None] * ROOM)

    async def busy_full() -> bool:
        return (await producer.get_queue_stats()).running == HELD + ROOM

    await wait_until(busy_full, timeout=60, what="the busy worker full")
    [idle] = workers.start(1, concurrency=10, app=CHAOS_APP)
    await workers.wait_ready([idle])
    on_idle = await probe_starts(producer, record_path, "ch-quick", PROBES)
    assert {pid for _, pid in on_idle} == {idle.pid}

    async def probes_done() -> bool:  # the last probe may still be running
        stats = await producer.get_queue_stats()
        return (stats.queued, stats.running) == (0, HELD + ROOM)

    await wait_until(probes_done, timeout=60, what="the probes ended, the held nodes still held")

    report = (
        f"{HELD}-{HELD + ROOM} nodes running on one worker: new executions started "
        f"{', '.join(f'{s:.3f}' for s, _ in on_busy)} s after their enqueue on it, "
        f"{', '.join(f'{s:.3f}' for s, _ in on_idle)} s on an idle second worker"
    )
    print("\n" + report)
    for delays in ([s for s, _ in on_busy], [s for s, _ in on_idle]):
        assert statistics.median(delays) <= START_WITHIN_S, report
        assert max(delays) <= OUTLIER_S, report


async def keep_alive(workers: Workers, live: list[WorkerProcess], stop: asyncio.Event) -> int:
    """Start a new worker for each one that exits, until ``stop``; how many were replaced."""
    replaced = 0
    while not stop.is_set():
        for i, w in enumerate(live):
            if w.proc.poll() is not None:
                [live[i]] = workers.start(1, concurrency=10, app=CHAOS_APP, **POISON_ENV)
                replaced += 1
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), 0.1)
    return replaced


MAX_LOST = 2
POISON_ENV = {
    "MP_LEASE_SECONDS": "2",
    "CH_MAX_LOST": str(MAX_LOST),
    # Recovery through the lease only: the sweeper stays out of the way.
    "MP_SWEEP_SECONDS": "600",
    "MP_STALE_SECONDS": "3600",
}


@pytest.mark.timeout(300)
async def test_a_poison_node_reaches_the_dlq_and_its_neighbours_complete(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    live = workers.start(3, concurrency=10, app=CHAOS_APP, **POISON_ENV)
    producer = await make_producer()
    await producer.register_workflow(chain("ch-healthy", 2, sleepMs=[200, 600]))
    poison = chain("ch-poison", 1, sleepMs=[300, 300], exitProcess=True)
    await producer.register_workflow(poison)
    await workers.wait_ready(live)
    stop = asyncio.Event()
    keeper = asyncio.create_task(keep_alive(workers, live, stop))
    try:
        healthy = await producer.enqueue_bulk("ch-healthy", [None] * 30)
        [bad] = await producer.enqueue_bulk("ch-poison", [None])
        healthy += await producer.enqueue_bulk("ch-healthy", [None] * 30)

        async def all_settled() -> bool:
            counts = await status_counts(db, pg_schema)
            return counts.get("completed", 0) + counts.get("failed", 0) == 61

        await wait_until(all_settled, timeout=200, what="61 executions settled", every=0.2)
    finally:
        stop.set()
        replaced = await keeper

    states = {e: await producer.get_execution(e) for e in [*healthy, bad]}
    assert [e for e in healthy if states[e].status != "completed"] == []
    assert states[bad].status == "failed"
    error = states[bad].node_results["n0"].error or ""
    assert f"lost its worker {MAX_LOST + 1} times in a row" in error
    dlq = await producer.get_dlq_items()
    assert [(i.execution_id, i.node_id) for i in dlq] == [(bad, "n0")]
    # It ran once beside others, then alone until it had killed MAX_LOST + 1 more workers.
    poison_runs = starts_of(str(record_path), bad)
    assert len(poison_runs) == MAX_LOST + 2, poison_runs
    assert replaced >= MAX_LOST + 2
    print(
        f"\npoison node beside 60 healthy executions: {len(poison_runs)} runs, "
        f"{replaced} workers replaced; 60 of 60 healthy completed; DLQ: {len(dlq)} item"
    )
