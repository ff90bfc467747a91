"""Quickstart: a workflow in code, run by a worker inside this process.

    python examples/quickstart.py

No setup needed: without REDIS_URL an embedded Redis server is started (and stopped).
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    BackoffPolicy,
    ExecutionContext,
    ExecutionResult,
    NodeRegistry,
    RetryPolicy,
    Workflow,
    WorkflowEngine,
    success_result,
)

wf = Workflow("signup")


@wf.node()
async def validate(user: dict[str, Any]) -> dict[str, Any]:
    # The entry node gets the execution's initial data.
    return {"email": user["email"].lower(), "plan": user.get("plan", "free")}


@wf.node(after=validate, retry=RetryPolicy(max_attempts=3, backoff=BackoffPolicy(delay=100)))
async def create_account(user: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
    # One parent: the input is that parent's data. Raising retries the node.
    if ctx.attempt == 1:
        raise ConnectionError("database hiccup")
    return {**user, "account_id": 42}


@wf.node(after=validate)
async def fraud_check(user: dict[str, Any]) -> float:
    # Runs in parallel with create_account (fan-out).
    return 0.02 if user["email"].endswith("@example.com") else 0.5


@wf.node(after=[create_account, fraud_check])
async def decide(parents: dict[str, Any]) -> ExecutionResult:
    # Several parents: the input is {parent_id: data}. next_nodes picks the branch
    # (the children it leaves out are skipped; [] would skip them all).
    account = parents["create_account"]
    if parents["fraud_check"] > 0.3:
        return success_result(account, next_nodes=[])
    branch = "welcome_pro" if account["plan"] == "pro" else "welcome_free"
    return success_result(account, next_nodes=[branch])


@wf.node(after=decide)
async def welcome_pro(account: dict[str, Any]) -> str:
    return f"Welcome to Pro, account {account['account_id']}!"


@wf.node(after=decide)
async def welcome_free(account: dict[str, Any]) -> str:
    return f"Welcome, account {account['account_id']}!"


async def main() -> None:
    async with WorkflowEngine(NodeRegistry()) as engine:
        await engine.register_workflow(wf)
        await engine.start_workers(concurrency=10)
        state = await engine.run_workflow("signup", {"email": "Ada@Example.com", "plan": "pro"})
        print(f"execution {state.status}")
        for node_id, result in state.node_results.items():
            print(f"  {node_id:<14} {result.status:<10} attempts={result.attempts} {result.data!r}")


if __name__ == "__main__":
    asyncio.run(main())
