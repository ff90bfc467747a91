"""Logs partitioned by month vs one plain table (issue 16 item 3): the cost of inserting log
lines into a table that holds millions, and of pruning the old ones.

    python benchmarks/partitions.py [--rows 10000000] [--months 12] [--prune-months 3] [--keep]

Needs ``$DATABASE_URL``. Two schemas of its own (dropped first and, unless ``--keep``, at
the end):

* ``spane_bench_plain``: the schema of migration 0007 (``logs`` one table, its rows
  deleted with their execution by ``ON DELETE CASCADE``);
* ``spane_bench_parted``: head (0008: ``logs`` partitioned by month).

Each gets the same data with ``INSERT ... SELECT generate_series``: executions spread evenly
over the last ``--months`` months (finished a second after they started), and ``--rows``
log lines in all, 50 per execution, at the times of their execution. Then ``VACUUM
ANALYZE``.

Measured, the same way on both:

1. **Insert**: 20,000 log lines of executions of this month, through the store's own
   statement (``ADD_LOGS``, as the log sink writes them: batches of 100 lines), into the
   table that holds the ``--rows``; lines per second and the median batch.
2. **Prune**: the executions that finished more than ``--months - --prune-months`` months
   ago (the oldest ``--prune-months`` months) and their logs. Plain: 0007's statement,
   batches of 500 executions, each deleting its executions' log lines by the cascade.
   Partitioned: ``pruning.prune_older_than`` as ``spane db prune`` runs it (the same
   batches, then the months nobody needs dropped whole). The wall time, log lines gone per
   second, and the size of ``logs`` on disk before and after (a plain table keeps the
   space of deleted rows until a vacuum reuses it).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from _common import machine

from spane_py.engine import pruning
from spane_py.stores.postgres import migrate, sql, sql_retention
from spane_py.stores.postgres.partitions import add_months, month_start
from spane_py.stores.postgres.store import PostgresExecutionStore

PLAIN, PARTED = "spane_bench_plain", "spane_bench_parted"
PER_EXECUTION = 50
INSERTED = 20_000
BATCH_LINES = 100

# Executions over [$2, $3): $1 of them, evenly spaced, each finished a second later.
INSERT_EXECUTIONS = """
INSERT INTO executions (execution_id, workflow_id, workflow_version, status, initial_data,
    created_at, started_at, completed_at)
SELECT gen_random_uuid(), 'wf', 1, 'completed', '{}'::jsonb, t.at, t.at,
       t.at + interval '1 second'
FROM generate_series(0, $1::int - 1) AS i,
LATERAL (SELECT $2::timestamptz + ($3::timestamptz - $2::timestamptz) * (i::float8 / $1)
         AS at) AS t
"""
INSERT_LOGS = """
INSERT INTO logs (execution_id, node_id, level, message, fields, logged_at)
SELECT e.execution_id, 'n1', 'info', 'line ' || k || ' of a node that did some work',
       jsonb_build_object('k', k), e.created_at + make_interval(secs => k * 0.01)
FROM executions e, generate_series(1, $1::int) k
"""
# 0007's prune statement: today's without the deletes from the default partitions, and
# counting the rows of logs and spans in their one table.
PRUNE_0007 = (
    sql_retention.PRUNE.replace(
        """), gone_logs AS (
  DELETE FROM logs_default l USING doomed d WHERE l.execution_id = d.execution_id
), gone_spans AS (
  DELETE FROM spans_default s USING doomed d WHERE s.execution_id = d.execution_id
)""",
        ")",
    )
    .replace("FROM logs_default t", "FROM logs t")
    .replace("FROM spans_default t", "FROM spans t")
)
assert "_default" not in PRUNE_0007


async def connect(url: str, schema: str) -> asyncpg.Connection:
    return await asyncpg.connect(url, server_settings={"search_path": schema})


async def build(url: str, schema: str, rows: int, months: int, now: datetime) -> float:
    """Migrate (0007 or head), fill; seconds the fill took."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
    finally:
        await conn.close()
    await migrate.upgrade(url, schema=schema, revision="0007" if schema == PLAIN else "head")
    first = add_months(month_start(now), -(months - 1))
    if schema == PARTED:  # the past months' partitions, as retention would have made them
        async with PostgresExecutionStore(url, schema=schema, max_pool_size=2) as store:
            for k in range(months):
                await store.ensure_partitions(add_months(first, k), ahead=0)
    conn = await connect(url, schema)
    try:
        start = time.perf_counter()
        await conn.execute(INSERT_EXECUTIONS, rows // PER_EXECUTION, first, now)
        await conn.execute(INSERT_LOGS, PER_EXECUTION)
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("VACUUM ANALYZE logs")
        return time.perf_counter() - start
    finally:
        await conn.close()


async def size(conn: asyncpg.Connection) -> int:
    """Bytes of ``logs`` with its indexes (and its partitions')."""
    value = await conn.fetchval(
        "SELECT sum(pg_total_relation_size(c.oid)) FROM pg_class c "
        "WHERE c.oid = 'logs'::regclass OR c.oid IN "
        "(SELECT inhrelid FROM pg_inherits WHERE inhparent = 'logs'::regclass)"
    )
    return int(value or 0)


async def insert(conn: asyncpg.Connection, now: datetime) -> tuple[float, float]:
    """Lines per second and the median batch in ms, for INSERTED lines of executions of
    this month."""
    ids = [
        str(r[0])
        for r in await conn.fetch(
            "SELECT execution_id FROM executions WHERE created_at >= $1 LIMIT 200",
            month_start(now),
        )
    ]
    batches: list[float] = []
    start = time.perf_counter()
    for b in range(INSERTED // BATCH_LINES):
        entries: list[dict[str, Any]] = [
            {
                "execution_id": ids[(b * BATCH_LINES + i) % len(ids)],
                "node_id": "n2",
                "level": "info",
                "message": f"new line {b}.{i}",
                "fields": {"b": b},
                "logged_at": now,
            }
            for i in range(BATCH_LINES)
        ]
        t = time.perf_counter()
        await conn.execute(sql.ADD_LOGS, orjson.dumps(entries).decode())
        batches.append(time.perf_counter() - t)
    return INSERTED / (time.perf_counter() - start), statistics.median(batches) * 1000


async def prune_plain(conn: asyncpg.Connection, before: datetime) -> tuple[int, float]:
    """Executions deleted, seconds: 0007's statement in batches of 500."""
    gone = 0
    start = time.perf_counter()
    while True:
        row = await conn.fetchrow(PRUNE_0007, "completed", before, None, [], None, 500)
        gone += int(row["executions"])
        if row["executions"] < 500:
            return gone, time.perf_counter() - start


async def measure(url: str, schema: str, args: argparse.Namespace, now: datetime) -> None:
    took = await build(url, schema, args.rows, args.months, now)
    conn = await connect(url, schema)
    try:
        lines = await conn.fetchval("SELECT count(*) FROM logs")
        size_before = await size(conn)
        rate, median = await insert(conn, now)
        before = add_months(month_start(now), -(args.months - 1) + args.prune_months)
        doomed_lines = await conn.fetchval(
            "SELECT count(*) FROM logs l JOIN executions e USING (execution_id) "
            "WHERE e.completed_at < $1",
            before,
        )
        drops = ""
        if schema == PLAIN:
            executions, wall = await prune_plain(conn, before)
            partitions = 0
        else:
            async with PostgresExecutionStore(url, schema=schema, max_pool_size=2) as store:
                dropping: list[float] = []
                drop = store.drop_partitions

                async def timed(when: datetime, *, dry_run: bool = False) -> Any:
                    t = time.perf_counter()
                    try:
                        return await drop(when, dry_run=dry_run)
                    finally:
                        dropping.append(time.perf_counter() - t)

                store.drop_partitions = timed  # type: ignore[method-assign]
                start = time.perf_counter()
                result = await pruning.prune_older_than(store, now - before, now)
                wall = time.perf_counter() - start
            executions, partitions = result.executions, result.partitions
            drops = f" ({sum(dropping):.2f} s of it dropping partitions)"
        left = await conn.fetchval("SELECT count(*) FROM logs")
        size_after = await size(conn)
    finally:
        await conn.close()
    mib = 1024 * 1024
    print(
        f"{schema}: filled {lines:,} log lines in {took:.0f} s; logs {size_before / mib:,.0f} MiB\n"
        f"  insert: {rate:,.0f} lines/s, median batch of {BATCH_LINES} {median:.1f} ms\n"
        f"  prune: {executions:,} executions and {doomed_lines:,} of their lines in "
        f"{wall:.1f} s{drops} ({doomed_lines / wall:,.0f} lines/s), {partitions} partitions "
        "dropped; "
        f"{left:,} lines left, logs {size_after / mib:,.0f} MiB"
    )
    assert left == lines + INSERTED - doomed_lines, (left, lines, doomed_lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--prune-months", type=int, default=3)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args()
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("partitions.py needs $DATABASE_URL")
    if not 0 < args.prune_months < args.months:
        sys.exit("--prune-months must be between 0 and --months")
    print(f"machine: {machine()}")
    now = datetime.now(UTC)
    try:
        for schema in (PLAIN, PARTED):
            await measure(url, schema, args, now - timedelta(seconds=1))
    finally:
        if not args.keep:
            conn = await asyncpg.connect(url)
            try:
                for schema in (PLAIN, PARTED):
                    await conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
            finally:
                await conn.close()


if __name__ == "__main__":
    asyncio.run(main())
