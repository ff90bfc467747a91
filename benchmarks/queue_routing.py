"""The cost of routing on the hop: the same workload on one queue and on four.

    python benchmarks/queue_routing.py [--executions 1000] [--runs 5] [--store memory|postgres]

The workload is diamond.py's (a -> b, c, d -> e, ``--executions`` executions enqueued up
front, one in-process worker at concurrency 50), with each of its five nodes of its own node
type. "one queue": every type on the default queue, the worker consuming it. "four queues":
the types spread over the queues q0..q3 (a and e share q0), one worker consuming all four, so
a node's children go to other queues and every claim looks at four lanes. The runs
alternate between the two, ``--runs`` of each; the medians of nodes per second and of this
process's CPU per node are printed, and the ratio. Goal (issue 15): four queues within 10%
of one.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from typing import Any

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

NODES = ("a", "b", "c", "d", "e")
EDGES = {"a": ["b", "c", "d"], "b": ["e"], "c": ["e"], "d": ["e"], "e": []}
LANES = {"a": "q0", "b": "q1", "c": "q2", "d": "q3", "e": "q0"}


def workflow() -> dict[str, Any]:
    return {
        "id": "routed",
        "nodes": [{"id": n, "type": f"t_{n}", "outputs": EDGES[n]} for n in NODES],
    }


async def one_run(executions: int, *, spread: bool, store_kind: str) -> tuple[float, float]:
    """(nodes per second, CPU µs per node) of one run."""
    registry = NodeRegistry()
    for n in NODES:
        registry.register(f"t_{n}", noop, queue=LANES[n] if spread else None)
    if store_kind == "postgres":
        await fresh_bench_schema()
    engine = make_engine(registry, store_kind=store_kind)
    async with engine:
        await engine.register_workflow(workflow())
        queues = sorted(set(LANES.values())) if spread else ["default"]
        await engine.start_workers(50, queues=queues)
        await engine.run_workflow("routed", 0, timeout=30)  # warm up
        cpu0, t0 = time.process_time(), time.perf_counter()
        ids = [await engine.enqueue_workflow("routed", i) for i in range(executions)]
        for execution_id in ids:
            await engine.wait_for_execution(execution_id, timeout=300)
        wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        await engine.purge()
    nodes = executions * len(NODES)
    return nodes / wall, cpu / nodes * 1e6


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=5)
    add_store_option(parser)
    args = parser.parse_args()
    print(f"{machine()}; {store_kind_text(args.store)}; {redis_kind()}")
    results: dict[bool, list[tuple[float, float]]] = {False: [], True: []}
    for _ in range(args.runs):
        for spread in (False, True):
            results[spread].append(
                await one_run(args.executions, spread=spread, store_kind=args.store)
            )
    medians = {}
    for spread, runs in results.items():
        rate = statistics.median(r for r, _ in runs)
        cpu = statistics.median(c for _, c in runs)
        medians[spread] = (rate, cpu)
        label = "four queues" if spread else "one queue  "
        each = ", ".join(f"{r:,.0f}" for r, _ in runs)
        print(f"{label}: {rate:,.0f} nodes/s (runs: {each}), {cpu:,.0f} µs CPU per node")
    ratio = medians[True][0] / medians[False][0]
    print(f"four queues / one queue: {ratio:.3f} of the throughput (goal: >= 0.90)")


if __name__ == "__main__":
    asyncio.run(main())
