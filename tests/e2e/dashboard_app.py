"""The application the dashboard tests serve: a small diamond whose nodes take a moment
(so a browser can see an execution run, then complete), a workflow whose second node
fails until ``FLAKY["up"]`` is set (for the dead-letter page), and one whose ``approve``
node waits for its resume token (served only where asked for: ``build_engine(workflows=)``).

``create_engine()`` is for ``spane api --app tests.e2e.dashboard_app:create_engine``: it
reads Redis, the key prefix and the store from the environment (``SpaneSettings``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import ExecutionContext, NodeRegistry, Workflow, WorkflowEngine
from spane_py.settings import SpaneSettings

STEP_S = 0.5
FLAKY = {"up": False}

report = Workflow("daily-report")


@report.node()
async def fetch(data: Any, ctx: ExecutionContext) -> dict[str, Any]:
    ctx.log("info", "fetching rows", source="warehouse")
    await asyncio.sleep(STEP_S)
    return {"rows": [3, 5, 8], "day": (data or {}).get("day", "today")}


@report.node(after=fetch)
async def count(data: dict[str, Any]) -> int:
    await asyncio.sleep(STEP_S)
    return len(data["rows"])


@report.node(after=fetch)
async def total(data: dict[str, Any], ctx: ExecutionContext) -> int:
    await asyncio.sleep(STEP_S / 2)
    ctx.log("warning", "one row was late", row=2)
    return sum(data["rows"])


@report.node(after=[count, total])
async def publish(parents: dict[str, Any]) -> str:
    await asyncio.sleep(STEP_S / 2)
    return f"{parents['count']} rows, total {parents['total']}"


flaky = Workflow("flaky-sync")


@flaky.node()
async def pull(data: Any) -> str:
    return "payload"


@flaky.node(after=pull)
async def push(data: str) -> str:
    if not FLAKY["up"]:
        raise ConnectionError("the partner API is down")
    return f"pushed {data}"


approval = Workflow("approval")


@approval.node()
async def ask(data: Any) -> Any:
    return data


approval.add("approve", "wait", after=ask)


@approval.node(after="approve")
async def act(data: Any) -> str:
    return f"approved: {data}"


WORKFLOWS = [report, flaky]


def build_engine(workflows: list[Workflow] = WORKFLOWS, **options: Any) -> WorkflowEngine:
    return WorkflowEngine(NodeRegistry(), workflows=list(workflows), **options)


def create_engine() -> WorkflowEngine:
    return build_engine(**SpaneSettings().engine_kwargs())
