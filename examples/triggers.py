"""Triggers: a workflow started by a cron schedule, another by a signed webhook.

python examples/triggers.py
"""

from __future__ import annotations

import asyncio

from spane_py import (
    ExecutionContext,
    NodeRegistry,
    WebhookSignatureError,
    WorkflowEngine,
    sign_webhook,
)

REPORT = {
    "id": "report",
    "nodes": [{"id": "build", "type": "build_report"}],
    # Every two seconds (six fields: seconds first), on Berlin's clock. Ticks missed while
    # no worker ran are skipped; "run_once" would run once for all of them.
    "triggers": [{"type": "schedule",
                  "config": {"cron": "*/2 * * * * *", "timezone": "Europe/Berlin",
                             "missed": "skip"}}],
}  # fmt: skip

ORDERS = {
    "id": "orders",
    "nodes": [{"id": "accept", "type": "accept_order"}],
    # POST /hooks/orders, its JSON body signed with the secret (X-Spane-Signature header:
    # a timestamp and the HMAC of "<timestamp>.<body>"; 5 minutes of tolerance).
    "triggers": [{"type": "webhook",
                  "config": {"path": "/hooks/orders", "method": "POST", "secret": "s3cret"}}],
}  # fmt: skip


async def build_report(ctx: ExecutionContext) -> str:
    return f"report of {ctx.input_data['tick']}"  # the tick's time, in UTC


async def accept_order(ctx: ExecutionContext) -> str:
    return f"order {ctx.input_data['order']} accepted"


async def main() -> None:
    registry = NodeRegistry()
    registry.register("build_report", build_report)
    registry.register("accept_order", accept_order)
    async with WorkflowEngine(registry, workflows=[REPORT, ORDERS]) as engine:
        await engine.start_workers()  # a worker fires the schedules too
        [schedule] = await engine.list_schedules()
        print(f"schedule {schedule.cron!r} ({schedule.timezone}), missed: {schedule.missed}")

        for _ in range(100):  # two ticks come within five seconds
            if await engine.store.get_execution_count(workflow_id="report") >= 2:
                break
            await asyncio.sleep(0.1)
        await engine.pause_schedule(schedule.schedule_id)
        page = await engine.store.list_executions(workflow_id="report")
        for record in sorted(page.items, key=lambda r: r.metadata["tick"]):
            state = await engine.wait_for_execution(record.execution_id)
            print(
                f"{record.metadata['trigger']}: {state.status}, {state.node_results['build'].data}"
            )

        body = b'{"order": 42}'  # the bytes received: the signature covers them
        signed = {"X-Spane-Signature": sign_webhook("s3cret", body)}  # "t=<now>,v1=<hex>"
        [execution_id] = await engine.trigger_webhook("/hooks/orders", "POST", body, signed)
        state = await engine.wait_for_execution(execution_id)
        print(f"webhook: {state.status}, {state.node_results['accept'].data!r}")
        # The same signed request again (a replay, or the sender's retry): nothing starts.
        again = await engine.trigger_webhook("/hooks/orders", "POST", body, signed)
        print(f"replayed: {'the first execution' if again == [execution_id] else again}")
        forged = {"X-Spane-Signature": sign_webhook("a guess", body)}
        try:
            await engine.trigger_webhook("/hooks/orders", "POST", body, forged)
        except WebhookSignatureError as exc:
            print(f"forged: refused ({exc.http_status}, {exc.details['reason']}), nothing started")


if __name__ == "__main__":
    asyncio.run(main())
