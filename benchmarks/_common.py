"""Shared setup for the benchmark scripts: one process, in-memory store, one worker."""

from __future__ import annotations

import os
import platform
import uuid
from typing import Any

from spane_py import InMemoryExecutionStore, NodeRegistry, WorkflowEngine


def make_engine(registry: NodeRegistry, *, max_executions: int = 100_000) -> WorkflowEngine:
    store = InMemoryExecutionStore(max_executions=max_executions)
    return WorkflowEngine(
        registry,
        store,
        redis_url=os.environ.get("REDIS_URL"),  # None: embedded Redis
        key_prefix=f"bench{uuid.uuid4().hex[:8]}",
    )


async def noop(ctx: Any) -> Any:
    return ctx.input_data


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def redis_kind() -> str:
    return "local Redis ($REDIS_URL)" if os.environ.get("REDIS_URL") else "embedded Redis"
