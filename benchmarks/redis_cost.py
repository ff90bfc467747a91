"""Redis work per node: redis-server CPU and commands for the diamond workload.

    python benchmarks/redis_cost.py [--executions 1000] [--held 2000] [--runs 3]

A private redis-server (the embedded one, on a unix socket) serves only this run, so its
``INFO`` counters hold nothing else. For each run: 1000 executions of the 5-node diamond
(a -> b, c, d -> e) started with one ``enqueue_bulk``, one in-process worker at concurrency
50; the deltas of redis-server's ``used_cpu_user + used_cpu_sys`` (INFO cpu) and of the calls
in ``INFO commandstats`` (commands run inside Lua scripts included, each counted; the
benchmark's own INFO calls left out) over the run, divided by the nodes run; ``--breakdown``
prints the calls per node of each command.

``--store postgres``: the PostgreSQL store (``$DATABASE_URL``, schema ``spane_bench``
dropped and migrated afresh for each run, or the embedded server).

Two cases: (a) nothing else running; (b) ``--held`` long-running nodes (sleeping) held by
another worker of the same queue the whole time; the runs of (a) and (b) take turns. Goal
(issue 11): (a) at most 25 us of Redis CPU per node, (b) within 20% of (a). The figure does
not depend on the machine's core count (it does on its speed, and a shared VM's speed drifts
by a third from one run to the next: compare medians of several runs, taken in turns).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

from _common import (
    BENCH_SCHEMA,
    add_store_option,
    fresh_bench_schema,
    machine,
    noop,
    store_kind_text,
)
from diamond import DIAMOND

from spane_py import ExecutionStore, InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.embedded import EmbeddedRedis

HOLD = {"id": "hold", "nodes": [{"id": "h", "type": "hold"}]}


async def redis_counters(
    engine: WorkflowEngine,
) -> tuple[float, dict[str, int], dict[str, int]]:
    """(CPU seconds, calls by command, microseconds by command) of the server so far."""
    redis = engine.queue.redis
    cpu = await redis.info("cpu")
    stats: dict[str, Any] = await redis.info("commandstats")
    calls = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in stats.items()}
    usec = {k.removeprefix("cmdstat_"): int(v["usec"]) for k, v in stats.items()}
    return float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), calls, usec


def _delta(before: dict[str, int], after: dict[str, int]) -> dict[str, int]:
    return {k: n - before.get(k, 0) for k, n in after.items() if n != before.get(k, 0)}


async def measure(
    url: str, executions: int, held: int, concurrency: int, breakdown: bool, store_kind: str
) -> dict[str, float]:
    released = asyncio.Event()
    holding = 0
    all_held = asyncio.Event()

    async def hold(ctx: Any) -> None:
        nonlocal holding
        holding += 1
        if holding >= held:
            all_held.set()
        await released.wait()

    registry = NodeRegistry()
    registry.register("noop", noop)
    registry.register("hold", hold)
    prefix = f"rcost{time.monotonic_ns() % 10**8}"
    store: ExecutionStore
    if store_kind == "postgres":
        from spane_py.stores.postgres.store import PostgresExecutionStore

        await fresh_bench_schema()
        store = PostgresExecutionStore(schema=BENCH_SCHEMA, apply_migrations=True)
    else:
        store = InMemoryExecutionStore(max_executions=executions + held + 100)
    async with WorkflowEngine(registry, store, redis_url=url, key_prefix=prefix) as engine:
        await engine.register_workflow(DIAMOND)
        await engine.register_workflow(HOLD)
        if held:
            # The holder is exactly full: it takes nothing of the diamonds.
            await engine.enqueue_bulk("hold", [None] * held)
            await engine.start_workers(held)
            await asyncio.wait_for(all_held.wait(), 120)
        await engine.start_workers(concurrency)
        await engine.run_workflow("diamond", {"x": 0}, timeout=60)  # warm-up
        await asyncio.sleep(0.2)
        cpu0, calls0, usec0 = await redis_counters(engine)
        t0 = time.perf_counter()
        ids = await engine.enqueue_bulk("diamond", [{"x": i} for i in range(executions)])
        states = [await engine.wait_for_execution(i, timeout=600) for i in ids]
        elapsed = time.perf_counter() - t0
        cpu1, calls1, usec1 = await redis_counters(engine)
        assert all(s.status == "completed" for s in states), "an execution did not complete"
        released.set()
        await engine.purge()
    if store_kind == "postgres":
        await store.close()
    nodes = executions * 5
    calls = _delta(calls0, calls1)
    calls.pop("info", None)  # this script's own reads
    if breakdown:
        usec = _delta(usec0, usec1)
        print(
            "    per node, calls (us inside Redis): "
            + ", ".join(
                f"{k} {n / nodes:.2f} ({usec.get(k, 0) / nodes:.1f})"
                for k, n in sorted(calls.items(), key=lambda kv: -kv[1])
            )
        )
    return {
        "cpu_us": (cpu1 - cpu0) / nodes * 1e6,
        "commands": sum(calls.values()) / nodes,
        "scripts": sum(n for k, n in calls.items() if k.startswith("eval")) / nodes,
        "rate": nodes / elapsed,
    }


async def main(
    executions: int, held: int, runs: int, concurrency: int, breakdown: bool, store_kind: str
) -> None:
    server = EmbeddedRedis()
    url = await server.astart()
    try:
        print(
            f"{executions} diamonds x 5 nodes per run, {runs} runs, worker concurrency "
            f"{concurrency}, {machine()}, private embedded redis-server, "
            f"{store_kind_text(store_kind)}"
        )
        # (a) and (b) take turns, so that a drift of the machine's speed meets both alike.
        cases = (("(a) alone", 0), (f"(b) beside {held} held jobs", held))
        results: dict[str, list[dict[str, float]]] = {label: [] for label, _ in cases}
        for _ in range(runs):
            for label, h in cases:
                results[label].append(
                    await measure(url, executions, h, concurrency, breakdown, store_kind)
                )
        for label, rs in results.items():
            cpu = [r["cpu_us"] for r in rs]
            print(
                f"  {label}: Redis CPU per node {statistics.median(cpu):.1f} us "
                f"(runs {min(cpu):.1f}-{max(cpu):.1f}); commands per node "
                f"{statistics.median(r['commands'] for r in rs):.1f}; script calls per node "
                f"{statistics.median(r['scripts'] for r in rs):.2f}; "
                f"{statistics.median(r['rate'] for r in rs):,.0f} nodes/s"
            )
        a, b = (statistics.median(r["cpu_us"] for r in rs) for rs in results.values())
        print(f"  (b) / (a): {b / a:.2f}")
    finally:
        await asyncio.to_thread(server.stop)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--held", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument(
        "--breakdown", action="store_true", help="print the calls per node of each command"
    )
    add_store_option(parser)
    args = parser.parse_args()
    asyncio.run(
        main(args.executions, args.held, args.runs, args.concurrency, args.breakdown, args.store)
    )
