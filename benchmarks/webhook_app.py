"""The application ``webhook_body_memory.py`` serves: one workflow started by an open
(unsigned) webhook, ``POST /api/webhooks/bench/upload``, under the engine's default limits.

``spane api --app webhook_app:create_engine`` (run from benchmarks/): Redis, the key prefix
and the store come from the environment (``SpaneSettings``).
"""

from __future__ import annotations

from typing import Any

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.settings import SpaneSettings

HOOK_PATH = "bench/upload"

UPLOAD = {
    "id": "bench-upload",
    "nodes": [{"id": "accept", "type": "bench_accept"}],
    "triggers": [{"type": "webhook", "config": {"path": f"/{HOOK_PATH}", "method": "POST"}}],
}


async def accept(ctx: ExecutionContext) -> Any:
    return ctx.input_data


def create_engine() -> WorkflowEngine:
    registry = NodeRegistry()
    registry.register("bench_accept", accept)
    return WorkflowEngine(registry, workflows=[UPLOAD], **SpaneSettings().engine_kwargs())
