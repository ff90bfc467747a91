"""The application of the dashboard search tests (``test_dashboard_search.py``):

- ``order``: ``take`` then ``hold``, a ``wait`` node with a one-hour timeout: an order
  stays running (waiting) until it is resumed or cancelled — what is searched and
  bulk-cancelled;
- ``parent``: ``prepare``, then ``call``, a ``sub-workflow`` node that runs ``child``,
  then ``finish`` (a parent and its child execution);
- ``sync``: ``push`` fails with "the partner API is down" until ``FLAKY["up"]``, and
  ``audit``: ``check`` always fails with "the ledger is locked" (two groups of dead
  letters).
"""

from __future__ import annotations

from typing import Any

from spane_py import NodeRegistry, Workflow, WorkflowEngine

FLAKY = {"up": False}

order = Workflow("order", description="An order that waits for its confirmation.")


@order.node()
async def take(data: Any) -> Any:
    return data


order.add("hold", "wait", after=take, config={"timeoutSeconds": 3600})

child = Workflow("child", description="The work a parent hands off.")


@child.node()
async def work(data: Any) -> dict[str, Any]:
    return {"worked": data}


parent = Workflow("parent", description="Prepares, calls child, finishes.")


@parent.node()
async def prepare(data: Any) -> Any:
    return data


parent.add("call", "sub-workflow", after=prepare, config={"workflowId": "child"})


@parent.node(after="call")
async def finish(data: Any) -> str:
    return f"finished: {data}"


sync = Workflow("sync")


@sync.node()
async def push(data: Any) -> str:
    if not FLAKY["up"]:
        raise ConnectionError("the partner API is down")
    return f"pushed {data}"


audit = Workflow("audit")


@audit.node()
async def check(data: Any) -> str:
    raise RuntimeError("the ledger is locked")


WORKFLOWS = [order, child, parent, sync, audit]


def build_engine(**options: Any) -> WorkflowEngine:
    return WorkflowEngine(NodeRegistry(), workflows=list(WORKFLOWS), **options)
