"""Helpers of the HTTP API tests: test workflows, a gate, polling, error bodies."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from fastapi import FastAPI

GREET = {
    "id": "greet",
    "nodes": [
        {"id": "hello", "type": "echo", "outputs": ["shout"]},
        {"id": "shout", "type": "upper"},
    ],
}
BROKEN = {
    "id": "broken",
    "nodes": [
        {"id": "start", "type": "echo", "outputs": ["explode"]},
        {"id": "explode", "type": "fail"},
    ],
}
GATED = {"id": "gated", "nodes": [{"id": "hold", "type": "gate", "outputs": ["after"]},
                                  {"id": "after", "type": "echo"}]}  # fmt: skip
APPROVAL = {
    "id": "approval",
    "nodes": [
        {"id": "ask", "type": "echo", "outputs": ["approve"]},
        {"id": "approve", "type": "wait", "config": {"timeoutSeconds": 3600}},
    ],
}


class Gate:
    """Holds ``gate`` nodes until ``open()``: executions stay running while a test acts."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.fail = True  # ``fail`` nodes raise while this is set
        self.entered: set[str] = set()  # executions whose gate node is being held

    def open(self) -> None:
        self.event.set()


def make_client(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def eventually(
    check: Callable[[], Awaitable[Any]], *, timeout: float = 10.0, interval: float = 0.02
) -> Any:
    """Call ``check`` until it returns something truthy; that value."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = await check()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"still {value!r} after {timeout} s")
        await asyncio.sleep(interval)


async def start(client: httpx.AsyncClient, workflow_id: str, data: Any = None) -> str:
    res = await client.post(f"/api/workflows/{workflow_id}/executions", json={"input": data})
    assert res.status_code == 201, res.text
    execution_id: str = res.json()["execution_id"]
    return execution_id


async def wait_status(client: httpx.AsyncClient, execution_id: str, *statuses: str) -> Any:
    async def check() -> Any:
        body = (await client.get(f"/api/executions/{execution_id}")).json()
        return body if body["status"] in statuses else None

    return await eventually(check)


def error_of(res: httpx.Response) -> dict[str, Any]:
    """The ``error`` object of a 4xx/5xx answer (every one has it)."""
    body = res.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert error["code"], error
    assert error["message"], error
    return error
