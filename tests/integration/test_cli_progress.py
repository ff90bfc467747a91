"""``spane run``'s progress display: it follows the execution and returns its final state."""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import ExecutionContext, NodeRegistry
from spane_py.cli import _wait_with_progress
from tests.integration.conftest import EngineFactory


async def test_progress_follows_the_execution_to_its_end(make_engine: EngineFactory) -> None:
    registry = NodeRegistry()

    async def slow(ctx: ExecutionContext) -> Any:
        await asyncio.sleep(0.4)
        return ctx.input_data

    registry.register("slow", slow)
    engine = await make_engine(registry)
    await engine.register_workflow(
        {"id": "slowish", "nodes": [{"id": "a", "type": "slow", "outputs": ["b"]},
                                    {"id": "b", "type": "slow"}]}
    )  # fmt: skip
    await engine.start_workers(2)
    execution_id = await engine.enqueue_workflow("slowish", 5)
    state = await _wait_with_progress(engine, execution_id, 10, show=True)
    assert state.status == "completed"
    assert state.node_results["b"].data == 5
