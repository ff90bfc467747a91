"""Watching an engine: its event stream, its Prometheus metrics, its OpenTelemetry spans.

python examples/observability.py        (tracing needs: pip install 'spane-py[otel]')
"""

from __future__ import annotations

import asyncio
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine

ORDER = {
    "id": "order",
    "nodes": [
        {"id": "fetch", "type": "fetch", "outputs": ["total"],
         "retryPolicy": {"maxAttempts": 3, "backoff": {"type": "fixed", "delay": 50}}},
        {"id": "total", "type": "total"},
    ],
}  # fmt: skip


async def fetch(ctx: ExecutionContext) -> dict[str, Any]:
    if ctx.attempt == 1:
        raise ConnectionError("price service timed out")  # retried once
    return {"qty": ctx.input_data["qty"], "price": 12}


async def total(ctx: ExecutionContext) -> int:
    return int(ctx.input_data["qty"] * ctx.input_data["price"])


async def main() -> None:
    # In production: an OTLP exporter in a BatchSpanProcessor.
    spans = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(spans))

    registry = NodeRegistry()
    registry.register("fetch", fetch)
    registry.register("total", total)
    async with WorkflowEngine(registry, workflows=[ORDER], tracing=provider) as engine:
        await engine.start_workers()

        # Subscribe first: nothing that happens after this line is missed.
        async with await engine.subscribe(workflow_id="order") as events:
            await engine.enqueue_workflow("order", {"qty": 3})
            async for event in events:
                print(f"{event.name:<20} {event.node_id or '-':<6} {event.status}")
                if event.settles_execution:
                    break

        # What a Prometheus scrape of this process would read (serve_metrics serves it).
        for line in (await engine.metrics_text()).splitlines():
            if line.startswith(("spane_workflows_completed_total", "spane_nodes_executed")):
                print(line)

    finished = spans.get_finished_spans()
    print(f"{len(finished)} spans, {len({s.context.trace_id for s in finished})} trace:")
    for span in sorted(finished, key=lambda s: s.start_time or 0):
        print(f"  {span.name} {span.status.status_code.name}")


if __name__ == "__main__":
    asyncio.run(main())
