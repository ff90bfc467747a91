"""Register ``examples/restock.json`` and start executions of it, from a process that has
none of its executors, then wait for the workers of ``examples/restock_worker.py``.

    python examples/restock_producer.py
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from spane_py import NodeRegistry, SpaneSettings, WorkflowEngine

DEFINITION = (Path(__file__).parent / "restock.json").read_text()
ITEMS = [{"sku": "bolt-m4", "in_stock": 5}, {"sku": "nut-m4", "in_stock": 40}]


async def main() -> None:
    settings = SpaneSettings()
    if settings.store_kind != "postgres" or not settings.redis_url:
        sys.exit("set DATABASE_URL and REDIS_URL: the workers must see what this enqueues")
    # producer_only: the node types of the definition are not looked up in this (empty)
    # registry, whose executors are in the workers; everything else is checked as usual.
    engine = WorkflowEngine(
        NodeRegistry(), workflows=[DEFINITION], producer_only=True, **settings.engine_kwargs()
    )
    async with engine:
        ids = await engine.enqueue_bulk("restock", ITEMS)
        for execution_id in ids:
            state = await engine.wait_for_execution(execution_id, timeout=30)
            print(f"{state.status}: {state.node_results['order'].data}")


if __name__ == "__main__":
    asyncio.run(main())
