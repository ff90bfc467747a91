"""Fixtures for the HTTP API tests: an engine on the test Redis with an in-process worker,
the app built on it, and an httpx client talking to the app in process (ASGITransport:
no server, no port; the app's lifespan does not run, the engine fixture starts and
closes the engine)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from spane_py import ExecutionContext, NodeRegistry, WorkflowEngine
from spane_py.api import ApiSettings, create_app
from spane_py.queue.presence import WorkerPresence
from tests.api._support import APPROVAL, BROKEN, GATED, GREET, Gate, eventually, make_client


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
def registry(gate: Gate) -> NodeRegistry:
    registry = NodeRegistry()

    async def echo(ctx: ExecutionContext) -> Any:
        ctx.log("info", "echoing", node=ctx.node_id)
        return ctx.input_data

    async def upper(ctx: ExecutionContext) -> Any:
        return str(ctx.input_data).upper()

    async def fail(ctx: ExecutionContext) -> Any:
        if gate.fail:
            raise RuntimeError("the node failed on purpose")
        return "fixed"

    async def hold(ctx: ExecutionContext) -> Any:
        gate.entered.add(ctx.execution_id)
        await gate.event.wait()
        return ctx.input_data

    registry.register("echo", echo)
    registry.register("upper", upper)
    registry.register("fail", fail)
    registry.register("gate", hold)
    return registry


@pytest.fixture
async def running(engine: WorkflowEngine) -> WorkflowEngine:
    """The engine with the test workflows registered and a worker running."""
    for definition in (GREET, BROKEN, GATED, APPROVAL):
        await engine.register_workflow(definition)
    await engine.start_workers(8)
    presence = WorkerPresence(engine.queue.redis, prefix=engine.key_prefix)

    async def beating() -> bool:  # its first heartbeat: /healthz counts it from now on
        return bool(await presence.live())

    await eventually(beating)
    return engine


@pytest.fixture
def app(running: WorkflowEngine) -> FastAPI:
    return create_app(running, ApiSettings(token=None, cors_origins=""), close_engine=False)


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    async with make_client(app) as c:
        yield c
