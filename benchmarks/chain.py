"""Latency of one DAG hop: a chain of N no-op nodes, one execution at a time.

    python benchmarks/chain.py [--nodes 100] [--runs 5]

Reports the median and best time per hop over the runs (end-to-end execution time divided
by the number of nodes). Goal (issue 2): at most 3 ms per hop with one worker process and
the in-memory store. SPANE: 3.7-6 ms; arq at its default poll_delay: ~476 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


def chain(n: int) -> dict[str, object]:
    nodes = [
        {"id": f"n{i}", "type": "noop", "inputs": [f"n{i - 1}"] if i else []} for i in range(n)
    ]
    return {"id": "chain", "name": "chain", "nodes": nodes}


async def per_hop_ms(n: int, runs: int, store: str, concurrency: int = 10) -> list[float]:
    """One execution of an ``n``-node chain at a time, ``runs`` times: ms per hop of each."""
    if store == "postgres":
        await fresh_bench_schema()
    registry = NodeRegistry()
    registry.register("noop", noop)
    async with make_engine(registry, store_kind=store) as engine:
        await engine.register_workflow(chain(n))
        await engine.start_workers(concurrency)
        await engine.run_workflow("chain", 0, timeout=60)  # warm-up
        per_hop = []
        for _ in range(runs):
            start = time.perf_counter()
            state = await engine.run_workflow("chain", 0, timeout=120)
            elapsed = time.perf_counter() - start
            assert state.status == "completed", state.status
            per_hop.append(elapsed * 1000 / n)
        await engine.purge()
    await engine.store.close()
    return per_hop


async def main(n: int, runs: int, store: str) -> None:
    per_hop = await per_hop_ms(n, runs, store)
    print(f"chain of {n} nodes, {runs} runs, {machine()}, {redis_kind()}, {store_kind_text(store)}")
    print(f"  per hop: median {statistics.median(per_hop):.2f} ms, best {min(per_hop):.2f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    add_store_option(parser)
    args = parser.parse_args()
    asyncio.run(main(args.nodes, args.runs, args.store))
