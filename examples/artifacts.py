"""Artifacts: a node keeps a large file in the store and passes a reference downstream
instead of the data; the next node reads it back; the engine lists and reads them.

    python examples/artifacts.py
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import ArtifactRef, ExecutionContext, NodeRegistry, Workflow, WorkflowEngine

wf = Workflow("monthly_report")


@wf.node()
async def export(month: str, ctx: ExecutionContext) -> dict[str, Any]:
    rows = "".join(f"{month}-{day:02d},{day * 10}\n" for day in range(1, 31))
    csv = f"day,orders\n{rows}".encode()
    ref = await ctx.put_artifact("orders.csv", csv, content_type="text/csv")
    return {"month": month, "orders": ref}  # a reference, not the file


@wf.node(after=export)
async def summarize(export: dict[str, Any], ctx: ExecutionContext) -> dict[str, Any]:
    csv = await ctx.get_artifact(export["orders"])  # the bytes put upstream
    days = csv.decode().splitlines()[1:]
    summary = {"month": export["month"], "days": len(days)}
    summary["orders"] = sum(int(line.split(",")[1]) for line in days)
    await ctx.put_artifact("summary", summary)  # a JSON value
    return summary


async def main() -> None:
    async with WorkflowEngine(NodeRegistry()) as engine:
        await engine.register_workflow(wf)
        await engine.start_workers()
        state = await engine.run_workflow("monthly_report", "2026-11")
        print(f"{state.status}: {state.output}")
        ref = ArtifactRef.parse(state.node_results["export"].data["orders"])
        assert ref is not None
        print(f"export returned a reference to {ref.name!r}")
        for info in await engine.list_artifacts(state.execution_id):
            print(f"  {info.name:<10} {info.content_type:<16} {info.size:>4} bytes, {info.node_id}")
        summary = await engine.get_artifact(state.execution_id, "summary")
        print(f"summary: {summary.value()}")


if __name__ == "__main__":
    asyncio.run(main())
