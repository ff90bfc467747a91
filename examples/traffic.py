"""Rate limits, a "retry in N ms" from the service, and a circuit breaker.

python examples/traffic.py
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from spane_py import CircuitBreakerPolicy, ExecutionContext, NodeRegistry, WorkflowEngine

GEOCODE = {"id": "geocode", "nodes": [{"id": "lookup", "type": "geocode"}]}
NOTIFY = {"id": "notify", "nodes": [{"id": "sms", "type": "sms"}]}
CHECKOUT = {
    "id": "checkout",
    "nodes": [
        {"id": "charge", "type": "payments",
         "retryPolicy": {"maxAttempts": 10, "backoff": {"type": "fixed", "delay": 100}}},
    ],
}  # fmt: skip

geocoded: list[float] = []
sms_sent: list[float] = []
payments_up = False


async def geocode(ctx: ExecutionContext) -> str:
    geocoded.append(time.monotonic())
    return f"{ctx.input_data}: 52.5N"


async def sms(ctx: ExecutionContext) -> str:
    if not sms_sent:
        sms_sent.append(time.monotonic())
        # The SMS API answered "429, retry after 300 ms": every "sms" node waits that long,
        # in every worker process, and this one runs again without losing an attempt.
        ctx.rate_limit(300)
    sms_sent.append(time.monotonic())
    return f"sent to {ctx.input_data}"


async def payments(ctx: ExecutionContext) -> str:
    if not payments_up:
        raise ConnectionError("payments API unreachable")
    return f"charged {ctx.input_data} EUR"


async def main() -> None:
    global payments_up
    registry = NodeRegistry()
    # At most 5 geocode nodes start in any second, counted across all worker processes.
    registry.register("geocode", geocode, rate_limit=(5, 1.0))
    registry.register("sms", sms)
    # Two failures within 30 s open the breaker for 1 s; nodes wait meanwhile (no attempt
    # is spent waiting); one probe call then decides whether it closes.
    breaker = CircuitBreakerPolicy(failure_threshold=2, window_seconds=30, open_seconds=1)
    registry.register("payments", payments, circuit_breaker=breaker)
    async with WorkflowEngine(registry, workflows=[GEOCODE, NOTIFY, CHECKOUT]) as engine:
        await engine.start_workers(concurrency=20)

        ids = await engine.enqueue_bulk("geocode", [f"city {i}" for i in range(10)])
        for eid in ids:
            await engine.wait_for_execution(eid)
        # 5 start at once; the others wait (without holding a worker) and come back one
        # every 1/5 s as the window lets them in.
        starts = [t - geocoded[0] for t in sorted(geocoded)]
        print(f"geocode: {sum(t < 0.5 for t in starts)} at once, the rest in {max(starts):.0f} s")

        state = await engine.run_workflow("notify", "+49 30 1234")
        sent = state.node_results["sms"]
        held = sms_sent[1] - sms_sent[0]
        print(f"sms: {sent.data}, held {held:.1f} s, attempts {sent.attempts}")

        eid = await engine.enqueue_workflow("checkout", 42)
        for _ in range(250):  # the breaker's state is in Redis, shared by every worker
            if (await engine.breaker_state("payments")).state == "open":
                break
            await asyncio.sleep(0.02)
        print("payments breaker open after 2 failures: checkout waits")
        payments_up = True
        state = await engine.wait_for_execution(eid)
        result: Any = state.node_results["charge"]
        breaker_now = (await engine.breaker_state("payments")).state
        print(f"checkout {state.status.value}: {result.data!r} after {result.attempts} attempts")
        print(f"payments breaker {breaker_now}")


if __name__ == "__main__":
    asyncio.run(main())
