"""PostgreSQL outage (issue 6, item 3): the database is unreachable for 10 s in the middle
of a run. The workers reach it through a TCP proxy the test controls (the shared server is
never stopped):

* ``reset``: every connection is reset and new ones are refused (the server restarted,
  or a firewall that rejects);
* ``stall``: no byte goes through either way and new connections hang (a network
  partition; TCP would resume the connections afterwards).

The store retries what failed on connection loss with a capped exponential backoff
(``with_retry``, ``retry_for_seconds`` = 30 s by default); the workers keep their Redis jobs
and leases meanwhile. After the outage every execution completes, each node ran once and its
result was written once.
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
from tests.chaos.conftest import CHAOS_APP, Audit, MakeProducer, PgProxy
from tests.multiprocess.conftest import Workers

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

OUTAGE_S = 10.0
EXECUTIONS = 200
LENGTH = 3


@pytest.mark.parametrize("outage", ["reset", "stall"])
async def test_postgres_unreachable_for_10_s_mid_run_every_execution_completes(
    outage: str,
    pg_proxy: tuple[PgProxy, str],
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
) -> None:
    proxy, proxied_url = pg_proxy
    started = workers.start(
        3,
        concurrency=20,
        app=CHAOS_APP,
        DATABASE_URL=proxied_url,
        MP_LEASE_SECONDS="2",
        MP_SWEEP_SECONDS="1",
        MP_STALE_SECONDS="2",
    )
    producer = await make_producer()  # straight to PostgreSQL
    await producer.register_workflow(chain("ch-chain", LENGTH, sleepMs=[30, 80]))
    await workers.wait_ready(started)
    ids = await producer.enqueue_bulk("ch-chain", list(range(EXECUTIONS // 4)))

    async def some_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) >= EXECUTIONS // 8

    await wait_until(some_completed, timeout=60, what="executions completed", every=0.02)
    ids += await producer.enqueue_bulk("ch-chain", list(range(EXECUTIONS // 4, EXECUTIONS)))
    total = EXECUTIONS * LENGTH

    async def a_third_done() -> bool:
        return await succeeded_nodes(db, pg_schema) >= total / 3

    await wait_until(a_third_done, timeout=60, what="a third of the nodes done", every=0.02)
    if outage == "reset":
        proxy.cut()
    else:
        proxy.stall()
    t_down = time.monotonic()
    at_outage = await status_counts(db, pg_schema)
    nodes_at_outage = await succeeded_nodes(db, pg_schema)
    await asyncio.sleep(OUTAGE_S / 2)
    # Nothing gets through meanwhile.
    assert await succeeded_nodes(db, pg_schema) <= nodes_at_outage + 60  # in flight at the cut
    during = await succeeded_nodes(db, pg_schema)
    await asyncio.sleep(OUTAGE_S / 2)
    assert await succeeded_nodes(db, pg_schema) == during
    proxy.restore()
    t_up = time.monotonic()

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == EXECUTIONS

    await wait_until(all_completed, timeout=60, what="all executions completed after the outage")
    t_done = time.monotonic()
    retries = sum(
        w.log.read_text(errors="replace").count("retrying in") for w in started
    )  # with_retry's backoff warnings
    print(
        f"\nPostgreSQL {outage} for {t_up - t_down:.1f} s with {at_outage.get('completed', 0)} "
        f"of {EXECUTIONS} executions completed, {nodes_at_outage} of {total} nodes: all "
        f"completed {t_done - t_up:.2f} s after it came back; {retries} backoff warnings "
        f"in the worker logs"
    )
    assert 0 < at_outage.get("completed", 0) < EXECUTIONS  # the outage came mid-run
    assert all(w.proc.poll() is None for w in started), workers.tails()  # workers lived on
    assert await status_counts(db, pg_schema) == {"completed": EXECUTIONS}

    runs = runs_by_node(str(record_path))
    nodes = await store_nodes(db, pg_schema)
    assert len(nodes) == total
    assert {eid for eid, _ in nodes} == set(ids)
    problems = committed_once(runs, nodes, await audit.node_applications())
    assert not problems, problems[:5]
    ran_twice = {k: r for k, r in runs.items() if len(r) > 1}
    assert not ran_twice, list(ran_twice.items())[:3]
    settled = await audit.settlements()
    assert set(settled) == set(ids)
    assert all(s == ["completed"] for s in settled.values())
