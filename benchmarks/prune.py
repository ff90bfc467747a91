"""Retention's prune throughput on PostgreSQL (issue 16 item 1): rows deleted per second.

    python benchmarks/prune.py [--executions 100000] [--logs 10] [--spans 3] [--keep]

Needs ``$DATABASE_URL``. In a schema of its own (``spane_bench_prune``, dropped first and,
unless ``--keep``, at the end) it writes ``--executions`` executions with one ``INSERT ...
SELECT generate_series``: 90% finished 40 days ago (completed, failed, cancelled: 8:1:1),
5% finished yesterday, 5% running (kept: they are never pruned); each with three node
rows, ``--logs`` log lines and ``--spans`` spans, one event and, for the failed ones, a
dead-letter item; then ``VACUUM ANALYZE``.

Measured: ``prune_older_than(30 days)`` as ``spane db prune`` runs it (batches of 500
executions, one statement each, oldest first): the wall time, executions and rows deleted
per second, and the slowest batch (how long one statement holds its locks); then checks
that exactly the expired ones went.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta

from _common import machine

from spane_py.engine import pruning
from spane_py.stores.postgres.store import PostgresExecutionStore

SCHEMA = "spane_bench_prune"

INSERT_EXECUTIONS = """
INSERT INTO executions (execution_id, workflow_id, workflow_version, status, initial_data,
    created_at, started_at, completed_at)
SELECT gen_random_uuid(), 'wf' || (i % 20), 1,
    CASE WHEN i % 100 < 95 THEN
        CASE WHEN i % 10 < 8 THEN 'completed' WHEN i % 10 = 8 THEN 'failed'
             ELSE 'cancelled' END
    ELSE 'running' END,
    jsonb_build_object('i', i), t.at, t.at,
    CASE WHEN i % 100 < 95 THEN t.at + interval '2 seconds' END
FROM generate_series(1, $1::int) AS i,
LATERAL (SELECT CASE WHEN i % 100 < 90 THEN now() - interval '40 days'
                     ELSE now() - interval '1 day' END
                - make_interval(secs => i) AS at) AS t
"""
INSERT_NODES = """
INSERT INTO node_results (execution_id, node_id, status, attempts)
SELECT e.execution_id, 'n' || k, 'succeeded', 1 FROM executions e, generate_series(1, 3) k
"""
INSERT_LOGS = """
INSERT INTO logs (execution_id, node_id, level, message, fields, logged_at)
SELECT e.execution_id, 'n1', 'info', 'line ' || k || ' of a node that did some work',
       jsonb_build_object('k', k), e.created_at
FROM executions e, generate_series(1, $1::int) k
"""
INSERT_SPANS = """
INSERT INTO spans (span_id, execution_id, node_id, name, attempt, status, started_at, ended_at)
SELECT e.execution_id || ':n' || k || ':0:1', e.execution_id, 'n' || k, 'n' || k, 1,
       'succeeded', e.created_at, e.created_at + interval '1 second'
FROM executions e, generate_series(1, $1::int) k
"""
INSERT_EVENTS = """
INSERT INTO events (execution_id, workflow_id, type, at)
SELECT execution_id, workflow_id, 'execution.completed', created_at FROM executions
"""
INSERT_DLQ = """
INSERT INTO dlq_items (execution_id, workflow_id, node_id, job, error, attempts, failed_at)
SELECT execution_id, workflow_id, 'n3', '{}'::jsonb, 'boom', 3, completed_at
FROM executions WHERE status = 'failed'
"""


async def populate(url: str, n: int, logs: int, spans: int) -> tuple[float, int]:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()
    store = PostgresExecutionStore(url, schema=SCHEMA, apply_migrations=True)
    await store.start()
    await store.close()
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        start = time.perf_counter()
        await conn.execute(INSERT_EXECUTIONS, n)
        await conn.execute(INSERT_NODES)
        await conn.execute(INSERT_LOGS, logs)
        await conn.execute(INSERT_SPANS, spans)
        await conn.execute(INSERT_EVENTS)
        await conn.execute(INSERT_DLQ)
        tables = ("executions", "node_results", "logs", "spans", "events", "dlq_items")
        for table in tables:
            await conn.execute(f"VACUUM ANALYZE {table}")
        total = 0
        for table in tables:
            total += await conn.fetchval(f"SELECT count(*) FROM {table}")
        return time.perf_counter() - start, total
    finally:
        await conn.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--logs", type=int, default=10)
    parser.add_argument("--spans", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("prune.py needs $DATABASE_URL")
    print(f"machine: {machine()}")
    took, rows_before = await populate(url, args.executions, args.logs, args.spans)
    print(
        f"wrote {args.executions:,} executions, {rows_before:,} rows in all "
        f"({args.logs} logs, {args.spans} spans, 3 nodes, 1 event each) in {took:.1f} s"
    )
    store = PostgresExecutionStore(url, schema=SCHEMA, min_pool_size=1, max_pool_size=2)
    await store.start()
    batches: list[float] = []
    real = store.prune_executions

    async def timed(**kw: object) -> pruning.PruneResult:
        start = time.perf_counter()
        result = await real(**kw)  # type: ignore[arg-type]
        batches.append(time.perf_counter() - start)
        return result

    store.prune_executions = timed  # type: ignore[method-assign]
    try:
        now = datetime.now(UTC)
        dry_start = time.perf_counter()
        dry = await pruning.prune_older_than(store, timedelta(days=30), now, dry_run=True)
        dry_s = time.perf_counter() - dry_start
        batches.clear()
        start = time.perf_counter()
        result = await pruning.prune_older_than(store, timedelta(days=30), now)
        wall = time.perf_counter() - start
        left = await store.get_execution_count()
    finally:
        await store.close()
    expected = sum(1 for i in range(1, args.executions + 1) if i % 100 < 90)
    assert result.executions == dry.executions == expected, (result, dry, expected)
    assert left == args.executions - expected, left
    print(f"dry run: {dry.executions:,} executions, {dry.rows:,} rows would go ({dry_s:.2f} s)")
    print(
        f"pruned {result.executions:,} executions, {result.rows:,} rows in {wall:.2f} s: "
        f"{result.executions / wall:,.0f} executions/s, {result.rows / wall:,.0f} rows/s; "
        f"{len(batches)} batches, median {sorted(batches)[len(batches) // 2] * 1000:.0f} ms, "
        f"slowest {max(batches) * 1000:.0f} ms"
    )
    if not args.keep:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        finally:
            await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
