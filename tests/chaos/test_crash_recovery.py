"""Bounded crash recovery (issue 6, item 1): a worker killed with SIGKILL in the middle of a
node; the node runs again on another worker within a bound set by the lease.

How it works: a worker that takes a job sets its lease (``arq:in-progress:<job id>``,
``PX lease_seconds``) and refreshes it every ``lease_seconds / 3`` while the node runs. A
killed worker stops refreshing; the key expires, the job (still in the queue) can be claimed
again, and an idle worker finds it at its next claim — at the latest one ``poll_delay``
later (0.2 s in these apps, 0.5 s by default). So, with L = ``lease_seconds``:

    2/3 L  <=  recovery  <=  L + poll_delay (+ scheduling noise)

The default L = 30 s means a node cut off by a crash runs again 20-30.5 s later; the lease
can be set down to 1 s (``WorkflowEngine(lease_seconds=...)``, minimum 1). The bound the
tests assert is ``L + RECOVERY_SLACK_S``. While its lease is held (its worker alive and
refreshing) a node is never taken by another worker; a worker that is alive but frozen for
longer than L (SIGSTOP, a VM pause) loses its lease: the node may then run twice, but its
result is recorded once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path

import asyncpg
import pytest

from tests.chaos._checks import (
    committed_once,
    overlapping_runs,
    runs_by_node,
    starts_of,
    status_counts,
    store_nodes,
    summary,
    wait_until,
)
from tests.chaos.app import held
from tests.chaos.conftest import CHAOS_APP, Audit, MakeProducer
from tests.multiprocess.conftest import WorkerProcess, Workers

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

POLL_DELAY_S = 0.2  # tests/chaos/app.py
# Above the lease: one claim poll, the claim itself and the noise of a loaded 2-core box
# (kills, replacement workers importing). Measured: max 0.1-0.8 s over the lease (the
# latter with a load average of 8 from other jobs on the box).
RECOVERY_SLACK_S = 1.5
# The worst of 20 kills may also meet a CPU stall of the shared machine (seen once: 6.1 s
# with a 2 s lease while a type checker ran beside the suite): the median keeps the tight
# bound, the maximum gets this one.
OUTLIER_SLACK_S = 5.0
KILLS = 20
LEASE_S = 2.0
KILL_EVERY_S = 1.0

# Recovery through the lease only: the sweeper stays out of the way.
NO_SWEEP = {"MP_SWEEP_SECONDS": "600", "MP_STALE_SECONDS": "3600"}


async def first_start(record: Path, eid: str, *, timeout: float = 30.0) -> tuple[int, float]:
    """(pid, time) of the first run of ``eid``'s node."""
    deadline = time.monotonic() + timeout
    while True:
        found = starts_of(str(record), eid)
        if found:
            return found[0].pid, found[0].at
        if time.monotonic() > deadline:
            raise AssertionError(f"{eid} did not start within {timeout} s")
        await asyncio.sleep(0.01)


def by_pid(ws: list[WorkerProcess], pid: int) -> WorkerProcess:
    return next(w for w in ws if w.pid == pid)


async def test_sigkill_mid_node_runs_again_elsewhere_within_the_lease_20_kills(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
    tmp_path: Path,
) -> None:
    """20 times (about one a second): a node starts, its worker is SIGKILLed, a replacement
    is started; the node runs again on another worker 2/3 L to L + slack after the kill
    (L = 2 s here)."""
    env = {"MP_LEASE_SECONDS": str(LEASE_S), **NO_SWEEP}
    live = workers.start(4, concurrency=4, app=CHAOS_APP, **env)
    producer = await make_producer()
    await producer.register_workflow(held("ch-held"))
    await workers.wait_ready(live)

    kills: list[tuple[str, int, float]] = []  # (execution, pid killed, kill time)
    killed_at: dict[int, float] = {}
    for i in range(KILLS):
        gate = tmp_path / f"hold-{i}"
        gate.touch()
        eid = await producer.enqueue_workflow("ch-held", {"hold": str(gate)})
        pid, _ = await first_start(record_path, eid)
        victim = by_pid(live, pid)
        # What is measured is the lease, not how long a replacement takes to start (3-8 s
        # on a loaded box): the other workers are up before the kill.
        await workers.wait_ready([w for w in live if w is not victim])
        os.killpg(pid, signal.SIGKILL)
        t_kill = time.time()
        gate.unlink()  # the next run finishes at once
        kills.append((eid, pid, t_kill))
        killed_at[pid] = t_kill
        live.remove(victim)
        live += workers.start(1, concurrency=4, app=CHAOS_APP, **env)
        await asyncio.sleep(KILL_EVERY_S)

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == KILLS

    await wait_until(all_completed, timeout=30, what=f"{KILLS} executions completed")

    runs = runs_by_node(str(record_path))
    recovery = []
    for eid, pid, t_kill in kills:
        first, *later = runs[(eid, "hold")]
        # The run the kill cut off, then more, elsewhere: the last one finished and
        # counted; any in between was cut off by a later kill of its own worker (a rerun
        # can land on the worker the next round kills, before its result is written).
        assert (first.pid, first.end) == (pid, None), runs[(eid, "hold")]
        assert later, runs[(eid, "hold")]
        assert all(r.pid != pid for r in later), runs[(eid, "hold")]
        assert all(killed_at.get(r.pid, 0) > r.start for r in later[:-1]), later
        assert later[-1].end is not None
        recovery.append(later[0].start - t_kill)
    median, worst = summary(recovery)
    report = (
        f"SIGKILL recovery over {KILLS} kills, lease {LEASE_S:g} s: median {median:.2f} s, "
        f"max {worst:.2f} s, min {min(recovery):.2f} s "
        f"(bound: 2/3 L = {LEASE_S * 2 / 3:.2f} s .. L + {RECOVERY_SLACK_S:g} s = "
        f"{LEASE_S + RECOVERY_SLACK_S:.2f} s); all: {', '.join(f'{r:.2f}' for r in recovery)}"
    )
    (tmp_path / "recovery.txt").write_text(report + "\n")
    print("\n" + report)

    assert median <= LEASE_S + RECOVERY_SLACK_S, report
    assert worst <= LEASE_S + OUTLIER_SLACK_S, report
    # Not taken while the lease was held: never before the lease could have run out
    # (2/3 L, less a late refresh on a busy box).
    assert min(recovery) >= LEASE_S / 2, report
    assert not overlapping_runs(runs, killed_at)
    nodes = await store_nodes(db, pg_schema)
    assert not committed_once(runs, nodes, await audit.node_applications())
    assert all(s == ["completed"] for s in (await audit.settlements()).values())


async def test_recovery_time_follows_the_lease(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
    tmp_path: Path,
) -> None:
    """With a 5 s lease, three workers killed at once (one node each): each node runs again
    between 2/3 L and L + slack after the kill; the bound scales with the lease (so the
    default 30 s gives 20-30.5 s)."""
    lease = 5.0
    env = {"MP_LEASE_SECONDS": str(lease), **NO_SWEEP}
    # Concurrency 1: each held node is on a worker of its own.
    started = workers.start(4, concurrency=1, app=CHAOS_APP, **env)
    producer = await make_producer()
    await producer.register_workflow(held("ch-held"))
    await workers.wait_ready(started)
    gates = [tmp_path / f"hold-{i}" for i in range(3)]
    for gate in gates:
        gate.touch()
    eids = [await producer.enqueue_workflow("ch-held", {"hold": str(g)}) for g in gates]
    pids = [(await first_start(record_path, eid))[0] for eid in eids]
    assert len(set(pids)) == 3
    for pid in pids:
        os.killpg(pid, signal.SIGKILL)
    t_kill = time.time()
    for gate in gates:
        gate.unlink()

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == 3

    await wait_until(all_completed, timeout=lease + 15, what="3 executions completed")
    runs = runs_by_node(str(record_path))
    recovery = [runs[(eid, "hold")][1].start - t_kill for eid in eids]
    print(
        f"\nlease {lease:g} s, 3 workers killed at once: recovery "
        f"{', '.join(f'{r:.2f}' for r in recovery)} s "
        f"(bound {lease * 2 / 3:.2f} .. {lease + RECOVERY_SLACK_S:.2f} s)"
    )
    assert all(lease / 2 <= r <= lease + RECOVERY_SLACK_S for r in recovery), recovery
    assert not overlapping_runs(runs, dict.fromkeys(pids, t_kill))
    nodes = await store_nodes(db, pg_schema)
    assert not committed_once(runs, nodes, await audit.node_applications())


async def test_a_node_is_not_taken_while_its_lease_is_held(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
) -> None:
    """Nodes that run 2.5 times as long as the (2 s) lease, on a live worker, while other
    workers sit idle and poll: none is taken over; each runs once. (A lease of 1 s works
    too, but a worker starved of CPU for 2/3 s on a loaded CI box would lose it.)"""
    env = {"MP_LEASE_SECONDS": "2", **NO_SWEEP}
    busy = workers.start(1, concurrency=10, app=CHAOS_APP, **env)
    producer = await make_producer()
    await producer.register_workflow(
        {
            "id": "ch-long",
            "name": "ch-long",
            "nodes": [{"id": "long", "type": "ch_step", "config": {"sleepMs": [5000, 5500]}}],
        }
    )
    await workers.wait_ready(busy)
    eids = await producer.enqueue_bulk("ch-long", [None] * 10)

    async def all_started() -> bool:
        return sum(len(starts_of(str(record_path), e)) for e in eids) == 10

    await wait_until(all_started, timeout=20, what="10 long nodes started")
    idle = workers.start(2, concurrency=10, app=CHAOS_APP, **env)
    await workers.wait_ready(idle)

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == 10

    await wait_until(all_completed, timeout=30, what="10 executions completed")
    runs = runs_by_node(str(record_path))
    assert {len(r) for r in runs.values()} == {1}
    assert {r[0].pid for r in runs.values()} == {busy[0].pid}
    assert all(r[0].end is not None and r[0].end - r[0].start >= 5.0 for r in runs.values())
    nodes = await store_nodes(db, pg_schema)
    assert not committed_once(runs, nodes, await audit.node_applications())


async def test_a_frozen_worker_loses_its_lease_and_its_late_result_is_not_recorded(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
    tmp_path: Path,
) -> None:
    """A worker stopped (SIGSTOP) in the middle of a node for longer than the lease: another
    worker runs the node and its result counts; the frozen worker, continued, finishes its
    run too, but that result is not written, and the next node runs once."""
    env = {"MP_LEASE_SECONDS": "1", **NO_SWEEP}
    first = workers.start(1, concurrency=4, app=CHAOS_APP, **env)
    producer = await make_producer()
    await producer.register_workflow(held("ch-held-then", then=1))
    await workers.wait_ready(first)
    gate = tmp_path / "hold"
    gate.touch()
    eid = await producer.enqueue_workflow("ch-held-then", {"hold": str(gate)})
    frozen, _ = await first_start(record_path, eid)
    os.killpg(frozen, signal.SIGSTOP)
    try:
        gate.unlink()
        second = workers.start(1, concurrency=4, app=CHAOS_APP, **env)
        await workers.wait_ready(second)
        state = await producer.wait_for_execution(eid, timeout=20)
        assert state.status == "completed"
    finally:
        os.killpg(frozen, signal.SIGCONT)

    async def late_run_ended() -> bool:
        return all(s.end is not None for s in runs_by_node(str(record_path))[(eid, "hold")])

    await wait_until(late_run_ended, timeout=10, what="the frozen worker's run ended")
    # Its completion write (refused) and whatever it would send: a graceful stop ends the
    # deliveries under way first; then what it sent has been consumed.
    workers.signal(first, signal.SIGTERM)
    await workers.wait_exit(first)

    async def queue_empty() -> bool:
        stats = await producer.get_queue_stats()
        return (stats.queued, stats.scheduled, stats.running) == (0, 0, 0)

    await wait_until(queue_empty, timeout=30, what="the jobs sent after it to be consumed")
    runs = runs_by_node(str(record_path))
    hold = runs[(eid, "hold")]
    assert [s.pid for s in hold] == [frozen, second[0].pid]
    nodes = await store_nodes(db, pg_schema)
    assert nodes[(eid, "hold")].token == hold[1].token  # the run that counted: the second
    assert len(runs[(eid, "t0")]) == 1  # the child ran once
    assert not committed_once(runs, nodes, await audit.node_applications())
    assert await audit.settlements() == {eid: ["completed"]}
