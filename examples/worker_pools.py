"""Worker pools: node types routed to queues, workers that consume only some queues, and a
plain (blocking) def node on a thread.

    python examples/worker_pools.py

Here both pools are workers inside this one process; in production each is its own
`spane worker APP --queues ...` on its own machines.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine

registry = NodeRegistry()


async def thumbnail(ctx: ExecutionContext) -> dict[str, Any]:
    # Runs only on workers that consume the "gpu" queue.
    return {"image": ctx.input_data["image"], "thumbnail": f"thumb-{ctx.input_data['image']}"}


def notify(ctx: ExecutionContext) -> str:
    # A plain def: it runs on the worker's thread pool, so blocking here (an SDK call,
    # requests, ...) never stalls the worker's other nodes.
    time.sleep(0.05)
    return f"mailed {ctx.input_data['thumbnail']}"


registry.register("thumbnail", thumbnail, queue="gpu")
registry.register("notify", notify)  # no queue: "default"

UPLOAD = {
    "id": "upload",
    "nodes": [
        {"id": "thumb", "type": "thumbnail"},
        {"id": "mail", "type": "notify", "inputs": ["thumb"]},
    ],
}


async def main() -> None:
    async with WorkflowEngine(registry) as engine:
        await engine.register_workflow(UPLOAD)
        print(f"an unrestricted worker would consume: {', '.join(engine.default_queues())}")

        await engine.start_workers(queues=["default"])  # the general pool only, for now
        execution_id = await engine.enqueue_workflow("upload", {"image": "cat.png"})
        queues = await engine.list_queues()
        while not (queues[0].workers and any(q.unserved for q in queues)):
            await asyncio.sleep(0.05)  # until the worker's first heartbeat, and the job
            queues = await engine.list_queues()
        for q in queues:
            note = "  <- nobody consumes it" if q.unserved else ""
            print(f"queue {q.name}: {q.queued} waiting, {q.workers} worker(s){note}")

        await engine.start_workers(2, queues=["gpu"])  # the gpu pool starts
        state = await engine.wait_for_execution(execution_id, timeout=30)
        print(f"execution {state.status}: {state.node_results['mail'].data}")


if __name__ == "__main__":
    asyncio.run(main())
