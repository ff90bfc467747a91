"""Redis loss (issue 6, item 2): the Redis of running executions is emptied — FLUSHALL, or
the server killed and started again empty — while their nodes run. Every execution still
completes: the workers' sweeper finds the nodes the PostgreSQL store has as queued or
running for longer than ``stale_after_seconds`` and sends their jobs again. No node that had
succeeded runs again, and every node's result is written once.

These tests run a redis-server of their own (the shared one is never flushed).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest

from tests.chaos._checks import (
    committed_once,
    runs_by_node,
    status_counts,
    store_nodes,
    succeeded_nodes,
    wait_until,
)
from tests.chaos.app import chain
from tests.chaos.conftest import CHAOS_APP, Audit, MakeProducer, RedisServer
from tests.multiprocess.conftest import Workers

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

EXECUTIONS = 300
LENGTH = 3
SLOW = 5
SWEEP = {
    "MP_LEASE_SECONDS": "2",
    "MP_SWEEP_SECONDS": "1",
    "MP_STALE_SECONDS": "2",
}


async def running_nodes(db: asyncpg.Connection, schema: str) -> list[tuple[str, str]]:
    rows = await db.fetch(
        f"SELECT execution_id::text, node_id FROM {schema}.node_results WHERE status = 'running'"
    )
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("loss", ["flushall", "restart"])
async def test_redis_emptied_mid_run_every_execution_completes_from_the_store(
    loss: str,
    private_redis: RedisServer,
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
) -> None:
    started = workers.start(3, concurrency=20, app=CHAOS_APP, REDIS_URL=private_redis.url, **SWEEP)
    producer = await make_producer(redis_url=private_redis.url)
    await producer.register_workflow(chain("ch-chain", LENGTH, sleepMs=[30, 80]))
    # Nodes still running when the sweeper sends their lost jobs again: they run twice.
    await producer.register_workflow(chain("ch-slow", 2, sleepMs=[3000, 3500]))
    await workers.wait_ready(started)
    # A first wave, some of it completed before the loss; then the rest.
    ids = await producer.enqueue_bulk("ch-chain", list(range(EXECUTIONS // 3)))

    async def some_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) >= EXECUTIONS // 6

    await wait_until(some_completed, timeout=60, what="executions completed", every=0.02)
    slow = await producer.enqueue_bulk("ch-slow", [None] * SLOW)
    ids += await producer.enqueue_bulk("ch-chain", list(range(EXECUTIONS // 3, EXECUTIONS)))
    total = EXECUTIONS * LENGTH + SLOW * 2

    async def half_done() -> bool:
        running = {eid for eid, node in await running_nodes(db, pg_schema) if node == "n0"}
        return (
            running >= set(slow) and await succeeded_nodes(db, pg_schema) >= EXECUTIONS * LENGTH / 2
        )

    await wait_until(half_done, timeout=60, what="half of the nodes done", every=0.02)
    if loss == "flushall":
        private_redis.flushall()
    else:
        private_redis.kill()
        await asyncio.sleep(1.0)  # Redis is down for a second
        private_redis.start()  # empty: nothing was saved
    t_lost = time.time()
    # What had succeeded by then (read after the loss: these were committed before it).
    before = {k for k, n in (await store_nodes(db, pg_schema)).items() if n.status == "succeeded"}
    t_read = time.time()
    counts = await status_counts(db, pg_schema)

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == EXECUTIONS + SLOW

    await wait_until(all_completed, timeout=60, what="all executions completed")
    print(
        f"\nRedis {loss} with {counts.get('completed', 0)} of {EXECUTIONS} executions "
        f"completed, {len(before)} of {total} nodes succeeded, {SLOW} slow nodes running: "
        f"all completed {time.time() - t_lost:.2f} s later (sweeper: stale after 2 s, every 1 s)"
    )
    assert 0 < counts.get("completed", 0) < EXECUTIONS  # the loss came mid-run
    assert all(w.proc.poll() is None for w in started), workers.tails()  # workers lived on

    runs = runs_by_node(str(record_path))
    nodes = await store_nodes(db, pg_schema)
    assert {eid for eid, _ in nodes} == set(ids) | set(slow)
    assert len(nodes) == total
    problems = committed_once(runs, nodes, await audit.node_applications())
    assert not problems, problems[:5]
    # A node that had succeeded never ran again.
    again = [(k, r) for k in before for r in runs[k] if r.start > t_read]
    assert not again, again[:3]
    settled = await audit.settlements()
    assert set(settled) == set(ids) | set(slow)
    assert all(s == ["completed"] for s in settled.values())
    # Nodes that were running when Redis was lost and ran longer than stale_after_seconds
    # ran twice (their lease went with Redis), at the same time, on two workers; only one
    # result was written (above), and what followed them ran once.
    reran = {k for k, r in runs.items() if len(r) > 1}
    print(f"nodes run twice (running when Redis was lost): {sorted(n for _, n in reran)}")
    assert {(eid, "n0") for eid in slow} <= reran
    assert all(len(runs[(eid, "n1")]) == 1 for eid in slow)
    assert not reran & before
