"""A small application module for the ``spane worker`` / ``spane run`` end-to-end tests.

``engine`` is a module-level engine; ``create_engine`` is an async factory of an engine
that registers the workflows when it starts (``workflows=[...]``). Both read their
configuration through ``SpaneSettings``: ``REDIS_URL``, ``SPANE_KEY_PREFIX`` and the store
(``SPANE_STORE``, ``DATABASE_URL``, ``SPANE_DB_SCHEMA``). ``engine`` registers the node
functions of ``e2e-greet`` but not the workflow: on PostgreSQL it runs executions of a
version another process registered.
"""

from __future__ import annotations

import asyncio
from typing import Any

from spane_py import (
    InMemoryExecutionStore,
    NodeRegistry,
    Workflow,
    WorkflowEngine,
    success_result,
)
from spane_py.results import ExecutionResult
from spane_py.settings import SpaneSettings

greet = Workflow("e2e-greet")


@greet.node()
async def hello(data: dict[str, Any] | None) -> dict[str, Any]:
    data = data or {}
    return {"greeting": f"hello {data.get('name', 'world')}", "loud": bool(data.get("loud"))}


@greet.node(after=hello)
async def decide(greeting: dict[str, Any]) -> ExecutionResult:
    return success_result(greeting, next_nodes=["shout" if greeting["loud"] else "whisper"])


@greet.node(after=decide)
async def shout(greeting: dict[str, Any]) -> str:
    return greeting["greeting"].upper() + "!"


@greet.node(after=decide)
async def whisper(greeting: dict[str, Any]) -> str:
    return greeting["greeting"].lower() + "..."


slow = Workflow("e2e-slow")


@slow.node()
async def sleep_a_while() -> str:
    await asyncio.sleep(30)
    return "woke up"


registry = NodeRegistry()
greet.register_nodes(registry)  # a worker process needs the node functions registered

engine = WorkflowEngine(registry, **SpaneSettings().engine_kwargs())


async def create_engine() -> WorkflowEngine:
    # workflows=[...] are registered when the engine starts: a factory cannot register
    # them itself before that, as a PostgreSQL store is not connected yet.
    return WorkflowEngine(
        NodeRegistry(), workflows=[greet, slow], **SpaneSettings().engine_kwargs()
    )


def sync_factory() -> WorkflowEngine:
    return WorkflowEngine(NodeRegistry(), **SpaneSettings().engine_kwargs())


def failing_factory() -> WorkflowEngine:
    raise RuntimeError("no database today")


def bad_factory() -> int:
    return 42


not_an_engine = "just a string"


def memory_engine() -> WorkflowEngine:
    """An engine that keeps the in-memory store whatever the settings say."""
    return WorkflowEngine(
        registry, InMemoryExecutionStore(), **SpaneSettings().engine_kwargs(store=False)
    )
