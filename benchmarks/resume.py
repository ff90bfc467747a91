"""Bulk resume: how long resuming many paused executions takes (issue 4: 1000 within 5 s).

    python benchmarks/resume.py [--executions 1000] [--store memory|postgres]

1000 executions of a 3-node chain (a -> b -> c) are started and paused at once, then the
in-process worker takes their entry jobs, which park (a paused execution's node does not
start). Measured: ``resume_executions(ids)`` — every execution back to running and its
parked jobs sent, no queue scan — and the time until all of them completed.
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

CHAIN = {
    "id": "chain3",
    "nodes": [
        {"id": "a", "type": "noop", "outputs": ["b"]},
        {"id": "b", "type": "noop", "outputs": ["c"]},
        {"id": "c", "type": "noop"},
    ],
}


async def main(executions: int, runs: int, store: str) -> None:
    if store == "postgres":
        await fresh_bench_schema()
    registry = NodeRegistry()
    registry.register("noop", noop)
    resume_s: list[float] = []
    complete_s: list[float] = []
    async with make_engine(
        registry, max_executions=executions * (runs + 1) + 10, store_kind=store
    ) as engine:
        await engine.register_workflow(CHAIN)
        await engine.start_workers(50)
        for _ in range(runs):
            ids = await engine.enqueue_bulk("chain3", list(range(executions)))
            paused = await engine.pause_executions(ids)
            assert not paused.errors, paused.errors
            await asyncio.sleep(1.0)  # the worker takes the entry jobs, which park
            start = time.perf_counter()
            resumed = await engine.resume_executions(ids)
            resume_s.append(time.perf_counter() - start)
            assert len(resumed.changed) == executions, resumed
            states = [await engine.wait_for_execution(i, timeout=300) for i in ids]
            complete_s.append(time.perf_counter() - start)
            assert all(s.status == "completed" for s in states)
        await engine.purge()
    print(
        f"{executions} paused executions of a 3-node chain, {runs} runs, {machine()}, "
        f"{redis_kind()}, {store_kind_text(store)}"
    )
    print(f"  resume_executions: best {min(resume_s):.2f} s, worst {max(resume_s):.2f} s")
    print(f"  until all completed: best {min(complete_s):.2f} s, worst {max(complete_s):.2f} s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    add_store_option(parser)
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.runs, args.store))
