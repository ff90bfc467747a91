"""Several worker processes (separate OS processes, ``spane worker``) on one PostgreSQL and
one Redis: 200 wide diamonds complete with every join run once; killing and replacing every
worker mid-run loses no execution.

"Ran once" is checked against the executors' own record (a file every process appends to),
not only against the engine's bookkeeping: each run records a token that only that run
returns, so the token the store kept names the run that counted.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from spane_py import WorkflowEngine
from tests.multiprocess._checks import (
    node_rows,
    runs_by_node,
    status_counts,
    succeeded_nodes,
    wait_until,
)
from tests.multiprocess.app import BRANCHES, WORKFLOW_ID, wide_diamond
from tests.multiprocess.conftest import Workers

EXECUTIONS = 200
NODES = BRANCHES + 2  # root, branches, join


@pytest.mark.slow
async def test_200_wide_diamonds_on_three_worker_processes(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    started = workers.start(3, concurrency=20)
    # The workers never see a definition in code: they load it from PostgreSQL.
    await producer.register_workflow(wide_diamond())
    await workers.wait_ready(started)

    t0 = time.monotonic()
    ids = await producer.enqueue_bulk(WORKFLOW_ID, list(range(EXECUTIONS)))

    async def settled() -> bool:
        counts = await status_counts(db, pg_schema)
        return counts.get("running", 0) == 0

    await wait_until(settled, timeout=90, what="all executions settled")
    elapsed = time.monotonic() - t0
    print(
        f"\n{EXECUTIONS} wide diamonds ({EXECUTIONS * NODES} nodes) on 3 worker processes: "
        f"{elapsed:.2f} s, {EXECUTIONS * NODES / elapsed:.0f} nodes/s"
    )

    # No execution stuck in `running`: every one completed.
    assert await status_counts(db, pg_schema) == {"completed": EXECUTIONS}
    for eid in ids[:: EXECUTIONS // 10]:
        state = await producer.wait_for_execution(eid, timeout=5)
        assert state.status == "completed"
        assert set(state.node_results) == {"root", "join", *(f"b{i:02d}" for i in range(BRANCHES))}

    # Every node result recorded once, succeeded at the first attempt.
    rows = await node_rows(db, pg_schema)
    assert len(rows) == EXECUTIONS * NODES
    assert {(r.status, r.attempts) for r in rows.values()} == {("succeeded", 1)}
    assert {eid for eid, _ in rows} == set(ids)

    # Independently of the engine: each node ran exactly once (joins included), and the
    # result the store kept is that run's.
    runs = runs_by_node(str(record_path))
    assert set(runs) == set(rows)
    ran_twice = {key: r for key, r in runs.items() if len(r) != 1}
    assert not ran_twice, f"{len(ran_twice)} ran more than once: {list(ran_twice.items())[:3]}"
    assert all(runs[key][0].token == row.token for key, row in rows.items())
    joins = [key for key in runs if key[1] == "join"]
    assert sorted(eid for eid, _ in joins) == sorted(ids)

    # The work was shared by the three processes.
    pids = {r.pid for rs in runs.values() for r in rs}
    assert pids == {w.pid for w in started}
    assert not workers.errors(), workers.errors()[:10]


@pytest.mark.slow
@pytest.mark.chaos
async def test_killing_and_replacing_every_worker_mid_run_loses_no_execution(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    """SIGKILL two workers and SIGTERM the third while the executions run, start three
    new ones: every execution completes. The killed workers' running jobs come back when
    their lease runs out; children claimed in the store whose job a killed worker never
    sent come back through the sweeper."""
    fast_recovery = {
        "MP_SLEEP_MS": "20,50",
        "MP_LEASE_SECONDS": "2",
        "MP_SWEEP_SECONDS": "1",
        "MP_STALE_SECONDS": "2",
    }
    first = workers.start(3, concurrency=20, generation=1, **fast_recovery)
    await producer.register_workflow(wide_diamond())
    await workers.wait_ready(first)
    # A first wave, to have executions completed before the kill; then the rest.
    ids = await producer.enqueue_bulk(WORKFLOW_ID, list(range(40)))

    async def some_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) >= 10

    await wait_until(some_completed, timeout=60, what="10 executions completed")
    ids += await producer.enqueue_bulk(WORKFLOW_ID, list(range(40, EXECUTIONS)))
    total_nodes = EXECUTIONS * NODES

    async def a_third_done() -> bool:
        return await succeeded_nodes(db, pg_schema) >= total_nodes / 3

    await wait_until(a_third_done, timeout=60, what="a third of the nodes done")
    # Take every worker down at once: two killed, one stopped gracefully.
    killed, stopped = first[:2], first[2:]
    workers.signal(killed, signal.SIGKILL)
    workers.signal(stopped, signal.SIGTERM)
    t_down = time.monotonic()
    wall_down = datetime.now(UTC)
    at_kill = await status_counts(db, pg_schema)
    nodes_at_kill = await succeeded_nodes(db, pg_schema)
    codes = await workers.wait_exit(first)
    assert codes[:2] == [-signal.SIGKILL] * 2
    assert codes[2] == 0, workers.tail(stopped[0])  # a graceful stop

    second = workers.start(3, concurrency=20, generation=2, **fast_recovery)
    await workers.wait_ready(second)
    t_ready = time.monotonic()

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == EXECUTIONS

    await wait_until(all_completed, timeout=60, what="all executions completed after restart")
    t_done = time.monotonic()
    rows = await node_rows(db, pg_schema)
    runs = runs_by_node(str(record_path))

    first_pids = {w.pid for w in first}
    killed_pids = {w.pid for w in killed}
    second_pids = {w.pid for w in second}
    reran = [key for key, r in runs.items() if len(r) > 1]
    # When the work the SIGKILL cut off was done again (lease expiry + new workers).
    redone = await db.fetchval(
        f"SELECT max(completed_at) FROM {pg_schema}.node_results "
        "WHERE (execution_id::text, node_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [k[0] for k in reran],
        [k[1] for k in reran],
    )
    redone_after = (redone - wall_down).total_seconds() if redone is not None else float("nan")
    print(
        f"\nat the kill: {at_kill.get('completed', 0)} of {EXECUTIONS} executions completed, "
        f"{nodes_at_kill} of {total_nodes} nodes; new workers ready "
        f"{t_ready - t_down:.2f} s after the kill; the {len(reran)} node runs SIGKILL cut off "
        f"({sum(1 for k in reran if k[1] == 'join')} joins) were done again "
        f"{redone_after:.2f} s after the kill; all completed {t_done - t_down:.2f} s after "
        f"the kill ({t_done - t_ready:.2f} s after the new workers were ready)"
    )

    # No execution lost, none left running; every node succeeded.
    assert await status_counts(db, pg_schema) == {"completed": EXECUTIONS}
    assert len(rows) == total_nodes
    assert {eid for eid, _ in rows} == set(ids)
    assert {r.status for r in rows.values()} == {"succeeded"}
    assert 10 <= at_kill.get("completed", 0) < EXECUTIONS  # the kill came mid-run

    # Each node's result committed once: the run the store kept is a recorded run; any
    # other run is one a SIGKILL cut off before its result was written (never a run of a
    # live worker, never two runs after the restart, never a second run once a result was
    # committed).
    assert set(runs) == set(rows)
    for key, row in rows.items():
        node_runs = runs[key]
        tokens = [r.token for r in node_runs]
        assert row.token in tokens, (key, row, node_runs)
        committed = node_runs[tokens.index(row.token)]
        others = [r for r in node_runs if r is not committed]
        assert all(r.pid in killed_pids for r in others), (key, row, node_runs)
        assert len(others) <= 1, (key, node_runs)
        if others:
            assert committed.pid in second_pids, (key, node_runs)
    # Both generations did work (the test restarted a run in progress).
    pids = {r.pid for rs in runs.values() for r in rs}
    assert pids & first_pids
    assert pids & second_pids
