"""The executions list on 100,000 executions in PostgreSQL (issue 17: under 300 ms of
server time a page, however deep, with every filter).

    python benchmarks/list_page.py [--executions 100000] [--runs 15] [--gin] [--keep]

Needs ``$DATABASE_URL`` (and ``$REDIS_URL``, or an embedded Redis, for the engine the app
serves). In a schema of its own (``spane_bench_list``, dropped first and, unless
``--keep``, at the end) it writes the executions with one ``INSERT ... SELECT
generate_series`` (time-ordered uuids, one second apart; 20 workflows; 80% completed,
10% failed, 5% running — half of them with a node waiting — and the rest cancelled,
paused or queued; metadata ``{"tenant": "t<i % 50>", "batch": i / 1000}`` with
``tenant: "acme"`` on one in 997; input ``{"customer_id": i % 1000}``; every tenth a
sub-workflow child of the one before) and three node rows each, then ``ANALYZE``.

Measured: ``GET /api/executions`` through the app in process (httpx ``ASGITransport``:
routing, validation, the store's query, serialisation; no network), median and worst of
``--runs`` calls after one warm-up, for page 1, page 50 and the last page through the
cursor (the cursor of page N is the id that ends page N - 1), and each filter; then
``/api/stats`` (the counts above the list). ``--gin`` adds a GIN index on
``executions.metadata`` (``jsonb_path_ops``) to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from typing import Any

import httpx
from _common import machine, redis_kind

from spane_py import NodeRegistry, WorkflowEngine
from spane_py.api import ApiSettings, create_app
from spane_py.stores.postgres.store import PostgresExecutionStore

SCHEMA = "spane_bench_list"
PAGE = 50
GOAL_MS = 300.0

# $1: how many. Ids are UUIDv7-shaped from created_at (ms) and i: time-ordered, unique.
INSERT_EXECUTIONS = """
INSERT INTO executions (execution_id, workflow_id, workflow_version, status, initial_data,
    metadata, parent_execution_id, parent_node_id, depth, created_at, started_at,
    completed_at, error)
SELECT ids.id, 'wf' || (i % 20), 1,
    CASE WHEN i % 100 < 80 THEN 'completed' WHEN i % 100 < 90 THEN 'failed'
         WHEN i % 100 < 95 THEN 'running' WHEN i % 100 < 97 THEN 'cancelled'
         WHEN i % 100 < 99 THEN 'paused' ELSE 'queued' END,
    jsonb_build_object('customer_id', i % 1000, 'note', 'order ' || i),
    jsonb_build_object('tenant', CASE WHEN i % 997 = 0 THEN 'acme' ELSE 't' || (i % 50) END,
                       'batch', i / 1000),
    CASE WHEN i % 10 = 9 THEN prev.id END, CASE WHEN i % 10 = 9 THEN 'call' END,
    CASE WHEN i % 10 = 9 THEN 1 ELSE 0 END,
    t.at, t.at, CASE WHEN i % 100 < 90 THEN t.at + interval '2 seconds' END,
    CASE WHEN i % 100 BETWEEN 80 AND 89 THEN 'ValueError: bad row ' || (i % 7) END
FROM generate_series(1, $1::int) AS i,
LATERAL (SELECT now() - make_interval(secs => $1::int - i) AS at) AS t,
LATERAL (SELECT uuid_of(t.at, i) AS id) AS ids,
LATERAL (SELECT uuid_of(t.at - interval '1 second', i - 1) AS id) AS prev
"""
UUID_OF = """
CREATE FUNCTION uuid_of(at timestamptz, i int) RETURNS uuid LANGUAGE sql IMMUTABLE AS $$
  SELECT (lpad(to_hex((extract(epoch FROM at) * 1000)::bigint), 12, '0') || '7'
          || lpad(to_hex(i % 4096), 3, '0') || '8' || lpad(to_hex(i), 15, '0'))::uuid
$$
"""
# Three nodes each: done, failed or cancelled as the execution; a running one has its
# second node waiting (every other one) or running.
INSERT_NODES = """
INSERT INTO node_results (execution_id, node_id, status, attempts)
SELECT e.execution_id, 'n' || k,
    CASE WHEN e.status = 'completed' THEN 'succeeded'
         WHEN e.status = 'failed' THEN CASE WHEN k = 1 THEN 'succeeded' ELSE 'failed' END
         WHEN e.status = 'running' AND k = 2 THEN
              CASE WHEN get_byte(uuid_send(e.execution_id), 15) % 2 = 0 THEN 'waiting'
                   ELSE 'running' END
         WHEN e.status IN ('running', 'paused') AND k = 1 THEN 'succeeded'
         WHEN e.status = 'cancelled' THEN 'cancelled'
         ELSE 'pending' END,
    1
FROM executions e, generate_series(1, 3) AS k
"""


async def populate(url: str, n: int, gin: bool) -> float:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    finally:
        await conn.close()
    store = PostgresExecutionStore(url, schema=SCHEMA, apply_migrations=True)
    await store.start()  # creates and migrates the schema
    await store.close()
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        start = time.perf_counter()
        await conn.execute(UUID_OF)
        await conn.execute(INSERT_EXECUTIONS, n)
        await conn.execute(INSERT_NODES)
        if gin:
            await conn.execute(
                "CREATE INDEX ix_bench_metadata ON executions USING gin (metadata jsonb_path_ops)"
            )
        await conn.execute("VACUUM ANALYZE executions")
        await conn.execute("VACUUM ANALYZE node_results")
        return time.perf_counter() - start
    finally:
        await conn.close()


async def cursor_of_page(url: str, page: int) -> str | None:
    """The next_cursor that leads to page ``page`` (1-based): the id ending the page before."""
    import asyncpg

    if page <= 1:
        return None
    conn = await asyncpg.connect(url, server_settings={"search_path": SCHEMA})
    try:
        value = await conn.fetchval(
            "SELECT execution_id::text FROM executions ORDER BY execution_id DESC "
            "OFFSET $1 LIMIT 1",
            (page - 1) * PAGE - 1,
        )
        return str(value) if value is not None else None
    finally:
        await conn.close()


async def timed(client: httpx.AsyncClient, path: str, params: Any, runs: int) -> dict[str, Any]:
    res = await client.get(path, params=params)  # warm-up: the statement is prepared
    assert res.status_code == 200, res.text
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        res = await client.get(path, params=params)
        times.append((time.perf_counter() - start) * 1000)
        assert res.status_code == 200, res.text
    body = res.json()
    return {
        "median": statistics.median(times),
        "worst": max(times),
        "items": len(body["items"]) if "items" in body else None,
        "more": body.get("next_cursor") is not None if "items" in body else None,
    }


async def main(n: int, runs: int, gin: bool, keep: bool) -> None:
    url = os.environ.get("DATABASE_URL")
    if not url:
        sys.exit("list_page.py needs $DATABASE_URL (a PostgreSQL server it may write to)")
    print(f"{machine()}, PostgreSQL ($DATABASE_URL), {redis_kind()}")
    print(f"writing {n:,} executions and {3 * n:,} node rows into schema {SCHEMA} ...")
    took = await populate(url, n, gin)
    print(f"  written in {took:.1f} s{' (with a GIN index on metadata)' if gin else ''}")

    store = PostgresExecutionStore(url, schema=SCHEMA, apply_migrations=False)
    engine = WorkflowEngine(
        NodeRegistry(), store, redis_url=os.environ.get("REDIS_URL"), key_prefix="benchlist"
    )
    await engine.start()
    app = create_app(engine, ApiSettings(token=None, cors_origins=""), close_engine=False)
    last_page = -(-n // PAGE)
    cases: list[tuple[str, Any]] = [("page 1", {})]
    for page in (50, 1000, last_page):
        cases.append((f"page {page} (cursor)", {"cursor": await cursor_of_page(url, page)}))
    middle = time.time() - n / 2
    iso = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(middle))
    iso_end = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(middle + 3600))
    page_one = (await store.list_executions(limit=1)).items[0].execution_id
    cases += [
        ("workflow_id=wf3", {"workflow_id": "wf3"}),
        ("status=failed", {"status": "failed"}),
        ("status=queued", {"status": "queued"}),
        ("status=waiting", {"status": "waiting"}),
        ("id_prefix (8 chars)", {"id_prefix": page_one[:8]}),
        ("id_prefix (13 chars)", {"id_prefix": page_one[:13]}),
        ("since..until (1 h)", {"since": iso, "until": iso_end}),
        ("since (1 h ago)", {"since": _ago(3600)}),
        ("where metadata.tenant=t7 (2%)", {"where": "metadata.tenant=t7"}),
        ("where metadata.tenant=acme (0.1%)", {"where": "metadata.tenant=acme"}),
        ("where metadata.tenant=nobody (none)", {"where": "metadata.tenant=nobody"}),
        ("where input.customer_id=7 (0.1%)", {"where": "input.customer_id=7"}),
        ("roots_only", {"roots_only": "true"}),
        ("parent_id (50 parents)", None),  # filled below
        (
            "workflow + status + where",
            {"workflow_id": "wf3", "status": "completed", "where": "metadata.tenant=t3"},
        ),
        ("status=failed + where acme", {"status": "failed", "where": "metadata.tenant=acme"}),
    ]
    first = await store.list_executions(limit=PAGE, roots_only=True)
    parents = [("parent_id", r.execution_id) for r in first.items]
    cases = [(name, parents if params is None else params) for name, params in cases]
    worst = 0.0
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
        print(f"\nGET /api/executions (limit {PAGE}), {runs} calls each, ms:")
        print(f"  {'case':<38} {'median':>8} {'worst':>8}  items")
        for name, params in cases:
            if isinstance(params, dict):
                params = {"limit": PAGE, **params}
            else:
                params = [*params, ("limit", PAGE)]
            r = await timed(client, "/api/executions", params, runs)
            worst = max(worst, r["median"])
            more = "+" if r["more"] else ""
            print(f"  {name:<38} {r['median']:8.1f} {r['worst']:8.1f}  {r['items']}{more}")
        stats = await timed(client, "/api/stats", {}, runs)
        print(f"  {'GET /api/stats (the counts)':<38} {stats['median']:8.1f} {stats['worst']:8.1f}")
    await engine.close()
    if not keep:
        import asyncpg

        conn = await asyncpg.connect(url)
        try:
            await conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
        finally:
            await conn.close()
    verdict = "met" if worst < GOAL_MS else "MISSED"
    print(f"\nslowest median {worst:.1f} ms: goal (< {GOAL_MS:.0f} ms) {verdict}")


def _ago(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - seconds))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--executions", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--gin", action="store_true", help="a GIN index on metadata")
    parser.add_argument("--keep", action="store_true", help="keep the schema afterwards")
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.runs, args.gin, args.keep))
