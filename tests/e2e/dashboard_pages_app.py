"""The application of the dashboard page tests (``test_dashboard_pages.py``):

- ``nightly``: a schedule and a signed webhook, registered twice (``register_v2``: a changed
  config and one more node), for the workflows page;
- ``render``: its ``draw`` node runs on the ``gpu`` queue, which the server's worker does
  not consume at first (the unserved-queue banner);
- ``expense``: ``approve`` waits for a person, with a one-hour timeout (the approvals);
- ``big``: 150 nodes in 10 layers, with skip edges (a big graph), and ``chain``: 10 nodes
  in a row (a long one).
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    ExecutionContext,
    NodeRegistry,
    ScheduleTrigger,
    WebhookTrigger,
    Workflow,
    WorkflowEngine,
)

nightly = Workflow(
    "nightly",
    name="Nightly export",
    description="Exports yesterday's orders to the warehouse.",
    triggers=[
        ScheduleTrigger(cron="0 0 3 * * *", timezone="Europe/Berlin"),
        WebhookTrigger(path="hooks/nightly", secret="s3cret"),
    ],
)


@nightly.node(config={"source": "orders", "batch": 500})
async def extract(data: Any) -> dict[str, Any]:
    return {"rows": 3, "asked": data}


@nightly.node(after=extract)
async def load(data: dict[str, Any]) -> str:
    await asyncio.sleep(0.1)
    return f"loaded {data['rows']} rows"


def nightly_v2() -> dict[str, Any]:
    """The second version: a bigger batch, and a node that reports."""
    definition = nightly.raw_definition()
    for node in definition["nodes"]:
        if node["id"] == "extract":
            node["config"] = {"source": "orders", "batch": 2000}
    definition["nodes"].append({"id": "report", "type": "nightly.load", "inputs": ["extract"]})
    return definition


render = Workflow("render")


@render.node(queue="gpu")
async def draw(data: Any) -> str:
    return "a picture"


expense = Workflow("expense", description="An expense over the limit needs a manager.")


@expense.node()
async def submit(data: Any) -> Any:
    return data


expense.add(
    "approve", "wait", after=submit, name="Manager approval", config={"timeoutSeconds": 3600}
)


@expense.node(after="approve")
async def pay(data: Any) -> str:
    return f"paid: {data}"


async def noop(ctx: ExecutionContext) -> int:
    return 1


LAYERS, WIDTH = 10, 15
big = Workflow("big", description="150 nodes in 10 layers.")
for layer in range(LAYERS):
    for i in range(WIDTH):
        parents = []
        if layer:
            parents.append(f"n{layer - 1}_{(i * 7) % WIDTH}")
            if i % 3 == 0:
                parents.append(f"n{layer - 1}_{(i + 4) % WIDTH}")
            if layer >= 3 and i % 5 == 2:
                parents.append(f"n{layer - 3}_{i}")  # an edge over two layers
        big.add(f"n{layer}_{i}", "noop", after=sorted(set(parents)))

chain = Workflow("chain", description="Ten steps in a row.")
for step in range(10):
    chain.add(f"step{step}", "noop", after=[f"step{step - 1}"] if step else [])

WORKFLOWS = [nightly, render, expense, big, chain]


def build_engine(**options: Any) -> WorkflowEngine:
    registry = NodeRegistry()
    registry.register("noop", noop)
    return WorkflowEngine(registry, workflows=list(WORKFLOWS), **options)


async def register_v2(engine: WorkflowEngine) -> None:
    await engine.register_workflow(nightly_v2(), change_notes="batch of 2000; a report node")
