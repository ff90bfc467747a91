"""Graceful shutdown (issue 6, item 4): SIGTERM makes a worker stop taking jobs, lets its
running nodes finish within ``shutdown_grace``, then cancels the rest, whose jobs go back to
the queue at once (their lease is released, not left to expire) and run on another worker;
no node is left looking running.

The workers here keep the default 30 s lease: a cancelled node that ran again elsewhere
within a second or two was handed back, not recovered through its lease.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import asyncpg
import pytest
import redis.asyncio as aioredis

from tests.chaos._checks import (
    committed_once,
    runs_by_node,
    status_counts,
    store_nodes,
    wait_until,
)
from tests.chaos.app import chain
from tests.chaos.conftest import CHAOS_APP, Audit, MakeProducer
from tests.multiprocess.conftest import Workers

pytestmark = [pytest.mark.slow, pytest.mark.chaos]

GRACE_S = 2.0
SHORT_MS = [1000, 1500]  # finish within the grace period
LONG_MS = [5000, 5000]  # do not


async def in_progress_keys(redis_url: str, prefix: str) -> int:
    client = aioredis.Redis.from_url(redis_url)
    try:
        return len([k async for k in client.scan_iter(match=f"arq:in-progress:{prefix}:*")])
    finally:
        await client.aclose()


async def test_sigterm_finishes_running_nodes_within_the_grace_then_hands_back_the_rest(
    workers: Workers,
    make_producer: MakeProducer,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    audit: Audit,
    redis_url: str,
    key_prefix: str,
) -> None:
    env = {"MP_SHUTDOWN_GRACE": str(GRACE_S)}  # lease 30 s, sweeper after 30 s: defaults
    [first] = workers.start(1, concurrency=10, app=CHAOS_APP, **env)
    producer = await make_producer()
    # A short node's child is queued when it finishes, during the grace period.
    await producer.register_workflow(chain("ch-short", 2, sleepMs=SHORT_MS))
    await producer.register_workflow(chain("ch-long", 1, sleepMs=LONG_MS))
    await workers.wait_ready([first])
    short = await producer.enqueue_bulk("ch-short", [None] * 6)
    long = await producer.enqueue_bulk("ch-long", [None] * 4)

    async def all_started() -> bool:
        return len(runs_by_node(str(record_path))) == 10

    await wait_until(all_started, timeout=20, what="10 nodes started", every=0.02)
    assert await in_progress_keys(redis_url, key_prefix) == 10  # their leases
    # The worker is full: these wait in the queue.
    queued = await producer.enqueue_bulk("ch-short", [None] * 10)
    t_term = time.time()
    workers.signal([first], signal.SIGTERM)
    assert await workers.wait_exit([first], timeout=GRACE_S + 10) == [0], workers.tail(first)
    exited_after = time.time() - t_term

    # It took nothing new after the signal — neither the queued nodes nor the children of
    # the short ones — though slots were free once the short ones ended; the short ones
    # finished there; the long ones were cut off at the grace.
    runs = runs_by_node(str(record_path))
    assert len(runs) == 10
    assert all(r.start < t_term for rs in runs.values() for r in rs)
    assert all(runs[(e, "n0")][0].end is not None for e in short)
    assert all(runs[(e, "n0")][0].end is None for e in long)
    assert GRACE_S <= exited_after <= GRACE_S + 4, exited_after
    assert await status_counts(db, pg_schema) == {"running": 20}
    # Their jobs are back in the queue, leases released (not left to run out); the short
    # ones' children wait there too.
    assert await in_progress_keys(redis_url, key_prefix) == 0
    stats = await producer.get_queue_stats()
    assert (stats.queued, stats.running) == (4 + 10 + 6, 0)
    nodes = await store_nodes(db, pg_schema)
    assert {nodes[(e, "n0")].status for e in short} == {"succeeded"}
    assert {nodes[(e, "n0")].status for e in long} == {"running"}  # until run again

    # A long grace: stopping it idle below must not wait for it.
    [second] = workers.start(1, concurrency=20, app=CHAOS_APP, MP_SHUTDOWN_GRACE="30")
    await workers.wait_ready([second])
    t_ready = time.time()

    async def all_completed() -> bool:
        return (await status_counts(db, pg_schema)).get("completed", 0) == 20

    await wait_until(all_completed, timeout=30, what="20 executions completed")
    runs = runs_by_node(str(record_path))
    handed_back = [runs[(e, "n0")][1].start - t_ready for e in long]
    print(
        f"\nSIGTERM with 6 short and 4 long nodes running, 10 queued: exited "
        f"{exited_after:.2f} s later (grace {GRACE_S:g} s); the 4 cancelled nodes ran again "
        f"{max(handed_back):.2f} s at most after the next worker was ready (lease 30 s)"
    )
    assert max(handed_back) < 2.0, handed_back
    assert all(len(runs[(e, n)]) == 1 for e in short + queued for n in ("n0", "n1"))
    assert all(runs[(e, "n0")][0].pid == second.pid for e in queued)
    assert all(runs[(e, "n1")][0].pid == second.pid for e in short + queued)
    nodes = await store_nodes(db, pg_schema)
    assert {n.status for n in nodes.values()} == {"succeeded"}
    assert not committed_once(runs, nodes, await audit.node_applications())
    assert all(s == ["completed"] for s in (await audit.settlements()).values())

    # Idle, it stops at once, grace or not (its own stop takes milliseconds; the process
    # exit 0.4 s here, up to 1.7 s on a loaded box).
    t_term = time.time()
    workers.signal([second], signal.SIGTERM)
    assert await workers.wait_exit([second], timeout=30) == [0]
    assert time.time() - t_term < 5.0
    assert await in_progress_keys(redis_url, key_prefix) == 0
