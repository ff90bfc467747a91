"""Start executions for the workers of ``examples/postgres_app.py`` and wait for them.

    python examples/postgres_enqueue.py

Any process sharing the workers' PostgreSQL and Redis can do this — a web app, a cron job.
It registers the workflow (a new version only when the definition changed) and runs no
worker of its own.
"""

from __future__ import annotations

import asyncio
import sys

from postgres_app import invoice  # examples/ is on sys.path when run as a script

from spane_py import NodeRegistry, SpaneSettings, WorkflowEngine

ORDERS = [
    {"id": "A-1", "lines": [{"price": 12.5, "qty": 4}]},
    {"id": "A-2", "lines": [{"price": 40.0, "qty": 3}, {"price": 5.0, "qty": 2}]},
    {"id": "A-3", "lines": [{"price": 99.0, "qty": 1}]},
]


async def main() -> None:
    settings = SpaneSettings()
    if settings.store_kind != "postgres" or not settings.redis_url:
        sys.exit("set DATABASE_URL and REDIS_URL: the workers must see what this enqueues")
    engine = WorkflowEngine(NodeRegistry(), workflows=[invoice], **settings.engine_kwargs())
    async with engine:
        ids = await engine.enqueue_bulk("invoice", ORDERS)
        for execution_id in ids:
            state = await engine.wait_for_execution(execution_id, timeout=30)
            result = state.node_results["total"].data
            print(f"{result['id']}: {state.status}, total {result['total']:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
