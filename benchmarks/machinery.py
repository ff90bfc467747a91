"""The asyncio machinery a node costs: tasks, futures and timer handles made per node run.

    python benchmarks/machinery.py [--store memory|postgres] [--executions 300]

Runs ``--executions`` diamonds (a -> b, c, d -> e), all enqueued, then awaited together, on
one in-process worker at concurrency 50, and counts over that window what the event loop was
asked to make: ``create_task`` calls, ``create_future`` calls, ``call_later`` / ``call_at``
handles (timeouts and timers; a ``call_later`` also counts as one ``call_at``, which it
calls) and ``call_soon`` handles, each divided by the node runs. Batch sizes follow the
timing, so the counts move a little with the machine's load.
Counting, not timing: the figures do not depend on the machine's load. Run it on two
commits to see what a change removed (issue 13, item 2).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
from typing import Any

from _common import add_store_option, fresh_bench_schema, make_engine, noop
from diamond import DIAMOND

from spane_py import NodeRegistry


class Counting:
    """Wraps the running loop's factory methods and counts their calls while on."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.counts: collections.Counter[str] = collections.Counter()
        self.on = False
        for name in ("create_task", "create_future", "call_later", "call_at", "call_soon"):
            original = getattr(loop, name)
            setattr(loop, name, self._wrap(name, original))

    def _wrap(self, name: str, original: Any) -> Any:
        def counted(*args: Any, **kwargs: Any) -> Any:
            if self.on:
                self.counts[name] += 1
            return original(*args, **kwargs)

        return counted


async def main(executions: int, store: str) -> None:
    if store == "postgres":
        await fresh_bench_schema()
    registry = NodeRegistry()
    registry.register("noop", noop)
    async with make_engine(registry, store_kind=store) as engine:
        await engine.register_workflow(DIAMOND)
        await engine.start_workers(50)
        await engine.run_workflow("diamond", 0, timeout=60)  # warm-up
        counting = Counting(asyncio.get_running_loop())
        counting.on = True
        ids = [await engine.enqueue_workflow("diamond", i) for i in range(executions)]
        states = await asyncio.gather(*(engine.wait_for_execution(i, timeout=300) for i in ids))
        counting.on = False
        assert all(s.status == "completed" for s in states)
        await engine.purge()
    await engine.store.close()
    nodes = executions * len(DIAMOND["nodes"])
    print(f"{executions} diamonds ({nodes} node runs), {store} store; per node run:")
    for name in ("create_task", "create_future", "call_later", "call_at", "call_soon"):
        print(f"  {name:14s} {counting.counts[name] / nodes:6.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--executions", type=int, default=300)
    add_store_option(parser)
    args = parser.parse_args()
    asyncio.run(main(args.executions, args.store))
