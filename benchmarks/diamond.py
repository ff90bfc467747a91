"""Throughput: many executions of a 5-node diamond (a -> b, c, d -> e).

    python benchmarks/diamond.py [--executions 1000] [--concurrency 50]

All executions are enqueued up front; one in-process worker runs them. Reports nodes per
second from the first enqueue to the last completion. Goal (issue 2): 1,500 nodes/s or more
with one worker process and the in-memory store. SPANE: 1,200-1,400 nodes/s.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from _common import (
    add_store_option,
    fresh_bench_schema,
    machine,
    make_engine,
    noop,
    redis_kind,
    store_kind_text,
)

from spane_py import NodeRegistry

DIAMOND = {
    "id": "diamond",
    "name": "diamond",
    "nodes": [
        {"id": "a", "type": "noop", "outputs": ["b", "c", "d"]},
        {"id": "b", "type": "noop", "outputs": ["e"]},
        {"id": "c", "type": "noop", "outputs": ["e"]},
        {"id": "d", "type": "noop", "outputs": ["e"]},
        {"id": "e", "type": "noop"},
    ],
}


async def main(executions: int, concurrency: int, runs: int, store: str, bulk: bool) -> None:
    if store == "postgres":
        await fresh_bench_schema()
    registry = NodeRegistry()
    registry.register("noop", noop)
    rates = []
    async with make_engine(
        registry, max_executions=executions * (runs + 1) + 10, store_kind=store
    ) as engine:
        await engine.register_workflow(DIAMOND)
        await engine.start_workers(concurrency)
        await engine.run_workflow("diamond", {"x": 1}, timeout=60)  # warm-up
        for _ in range(runs):
            start = time.perf_counter()
            if bulk:
                ids = await engine.enqueue_bulk("diamond", [{"x": i} for i in range(executions)])
            else:
                ids = [
                    await engine.enqueue_workflow("diamond", {"x": i}) for i in range(executions)
                ]
            states = [await engine.wait_for_execution(i, timeout=300) for i in ids]
            elapsed = time.perf_counter() - start
            assert all(s.status == "completed" for s in states)
            rates.append(executions * 5 / elapsed)
        await engine.purge()
    print(
        f"{executions} executions x 5 nodes, concurrency {concurrency}, {runs} runs, "
        f"{machine()}, {redis_kind()}, {store_kind_text(store)}, "
        f"{'enqueue_bulk' if bulk else 'one enqueue_workflow at a time'}"
    )
    print(f"  nodes/s: best {max(rates):,.0f}, worst {min(rates):,.0f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=50)
    parser.add_argument("--runs", type=int, default=3)
    add_store_option(parser)
    parser.add_argument("--bulk", action="store_true", help="start them with enqueue_bulk")
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.concurrency, args.runs, args.store, args.bulk))
