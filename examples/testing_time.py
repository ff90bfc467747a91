"""Testing a workflow that takes two weeks, in well under a second: the engine's clock is a
SkippingClock, and run_until_idle(skip_time=True) skips it over every wait.

    python examples/testing_time.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    BackoffPolicy,
    ExecutionContext,
    NodeRegistry,
    RetryPolicy,
    SkippingClock,
    Workflow,
    WorkflowEngine,
)

wf = Workflow("trial")


@wf.node()
async def welcome(user: dict[str, Any]) -> dict[str, Any]:
    return user


wf.add("trial_period", "delay", after=welcome, config={"duration_minutes": 14 * 24 * 60})

HOUR_MS = 3_600_000


@wf.node(
    after="trial_period",
    retry=RetryPolicy(max_attempts=3, backoff=BackoffPolicy(type="fixed", delay=HOUR_MS)),
)
async def charge(user: dict[str, Any], ctx: ExecutionContext) -> str:
    if ctx.attempt == 1:
        raise ConnectionError("the payment provider is down")  # retried an hour later
    return f"charged {user['email']} on attempt {ctx.attempt}"


async def main() -> None:
    clock = SkippingClock()
    async with WorkflowEngine(NodeRegistry(), clock=clock) as engine:
        await engine.register_workflow(wf)
        execution_id = await engine.enqueue_workflow("trial", {"email": "ada@example.com"})
        await engine.run_until_idle(skip_time=True)
        state = await engine.get_execution(execution_id)
        print(f"execution {state.status}: {state.node_results['charge'].data}")
        print(f"skipped {clock.skipped.days} days {round(clock.skipped.seconds / 3600)} hour(s)")


if __name__ == "__main__":
    asyncio.run(main())
