"""Concurrency per key: one sync per customer at a time, the customers side by side.

python examples/concurrency_keys.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    ConcurrencyLimit,
    InvalidEnqueueOptionsError,
    NodeRegistry,
    Workflow,
    WorkflowEngine,
)

# At most one execution per value of input.customer runs (or is paused) at once; the others
# wait as "queued" and start, oldest first, as the one before them ends.
wf = Workflow("sync", concurrency=ConcurrencyLimit(key="input.customer", max=1))

running: dict[str, int] = {}
most: dict[str, int] = {}
started: list[str] = []


@wf.node()
async def pull(job: dict[str, Any]) -> dict[str, Any]:
    customer = job["customer"]
    running[customer] = running.get(customer, 0) + 1
    most[customer] = max(most.get(customer, 0), running[customer])
    started.append(f"{customer}#{job['n']}")
    await asyncio.sleep(0.1)  # the customer's API allows one session at a time
    running[customer] -= 1
    return job


async def main() -> None:
    async with WorkflowEngine(NodeRegistry(), workflows=[wf]) as engine:
        await engine.start_workers()
        jobs = [{"customer": c, "n": n} for n in range(3) for c in ("acme", "globex")]
        ids = await engine.enqueue_bulk("sync", jobs)
        waiting = await engine.store.get_execution(ids[2])  # acme's second
        assert waiting is not None
        print(f"acme#1 is {waiting.status.value}, key {waiting.concurrency_key}")

        for execution_id in ids:
            await engine.wait_for_execution(execution_id)
        for customer in ("acme", "globex"):
            order = [s for s in started if s.startswith(customer)]
            print(f"{customer}: {order}, at most {most[customer]} at once")

        try:
            await engine.enqueue_workflow("sync", {"client": "initech"})
        except InvalidEnqueueOptionsError as exc:
            print(f"refused: {exc}")


if __name__ == "__main__":
    asyncio.run(main())
