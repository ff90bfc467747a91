"""Retention: finished executions deleted once their time is up, by the engine's setting
and a workflow's own. The clock is skipped (a SkippingClock) instead of waiting a week.

    python examples/retention.py
"""

from __future__ import annotations

import asyncio

from spane_py import NodeRegistry, Retention, SkippingClock, Workflow, WorkflowEngine

orders = Workflow("orders")  # the engine's retention: completed ones kept 7 days
audits = Workflow("audits", retention={"completed": "30d"})  # its own: 30 days


@orders.node()
async def ship(order: int) -> str:
    return f"order {order} shipped"


@audits.node()
async def record(entry: int) -> str:
    return f"entry {entry} recorded"


async def main() -> None:
    clock = SkippingClock()
    retention = Retention(completed="7d", failed="30d", cancelled="1d")
    async with WorkflowEngine(NodeRegistry(), clock=clock, retention=retention) as engine:
        for wf in (orders, audits):
            await engine.register_workflow(wf)
        for i in range(3):
            await engine.enqueue_workflow("orders", i)
            await engine.enqueue_workflow("audits", i)
        await engine.run_until_idle()
        # Workers prune every minute on their own (retention_interval_seconds); by hand:
        for days in (1, 7, 30):
            clock.skip(days * 86400 + 60 - clock.skipped.total_seconds())
            pruned = await engine.prune()
            left = await engine.store.get_execution_count()
            print(f"day {days}: deleted {pruned.executions} execution(s), {left} left")


if __name__ == "__main__":
    asyncio.run(main())
