"""Helpers for the integration tests: definition builders, a call recorder, waiting.

A test that asserts something did NOT happen waits first for the event after which it could
no longer happen (``wait_until_idle``, an event in an ``EventLog``, a marker behind it), never
for a while: a sleep proves nothing on a slow machine and fails nothing on a fast one.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis

from spane_py import ExecutionContext, ExecutionStatus, NodeRegistry, WorkflowEngine
from spane_py.observability import events


def node(node_id: str, node_type: str, *inputs: str, **extra: Any) -> dict[str, Any]:
    """A node in the snake_case dict shape; ``inputs`` are its parents."""
    return {"id": node_id, "type": node_type, "inputs": list(inputs), **extra}


def workflow(workflow_id: str, *nodes: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"id": workflow_id, "name": workflow_id, "nodes": list(nodes), **extra}


@dataclass
class Call:
    node_id: str
    execution_id: str
    input_data: Any
    attempt: int
    at: float  # time.monotonic() when the executor was entered


@dataclass
class Recorder:
    """Records every executor call, in order, across node types."""

    calls: list[Call] = field(default_factory=list)

    def record(self, ctx: ExecutionContext) -> None:
        self.calls.append(
            Call(ctx.node_id, ctx.execution_id, ctx.input_data, ctx.attempt, time.monotonic())
        )

    def of(self, node_id: str, execution_id: str | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.node_id == node_id and (execution_id is None or c.execution_id == execution_id)
        ]

    def nodes(self, execution_id: str | None = None) -> list[str]:
        return [c.node_id for c in self.calls if execution_id in (None, c.execution_id)]

    def register(
        self,
        registry: NodeRegistry,
        node_type: str,
        body: Callable[[ExecutionContext], Awaitable[Any]],
    ) -> None:
        """Register ``body`` under ``node_type``, recording each call before running it."""

        async def execute(ctx: ExecutionContext) -> Any:
            self.record(ctx)
            return await body(ctx)

        registry.register(node_type, execute)


async def wait_until(
    predicate: Callable[[], Awaitable[bool]], *, timeout: float = 5.0, what: str = "condition"
) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.01)


async def queue_is_empty(engine: WorkflowEngine) -> bool:
    stats = await engine.get_queue_stats()
    return stats.queued == 0 and stats.scheduled == 0 and stats.running == 0


async def wait_queue_empty(engine: WorkflowEngine, timeout: float = 5.0) -> None:
    await wait_until(lambda: queue_is_empty(engine), timeout=timeout, what="an empty queue")


async def is_idle(engine: WorkflowEngine) -> bool:
    """Nothing left to happen unless something starts it: no job of the engine's queue is
    pending, scheduled or running, and no execution of its store is running.

    Sound as one observation: a node's children are enqueued in the same Redis call that
    ends its delivery, or before it, and every move between pending, scheduled and running
    is one script. A paused, finished or cancelled execution counts as idle; a running one
    never does (not even one waiting for a resume token: wait for that another way)."""
    if not await queue_is_empty(engine):
        return False
    return await engine.store.get_execution_count(status=ExecutionStatus.RUNNING) == 0


async def wait_until_idle(engine: WorkflowEngine, *, timeout: float = 15.0) -> None:
    """Wait until ``is_idle``: what the engine had to do is done, a job that would (wrongly)
    start something has been consumed, and whatever it started has run."""
    await wait_until(lambda: is_idle(engine), timeout=timeout, what="the engine to be idle")


class EventLog:
    """The spane_py events (``spane_py.observability.events``) emitted in this process
    while installed as a sink (``capture_events``), in order, with their fields."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, dict[str, Any]]] = []

    def __call__(self, name: str, fields: Mapping[str, Any]) -> None:
        self.seen.append((name, dict(fields)))

    def of(self, name: str, **match: Any) -> list[dict[str, Any]]:
        """The fields of each ``name`` event whose fields include ``match``."""
        return [
            f for n, f in self.seen if n == name and all(f.get(k) == v for k, v in match.items())
        ]

    async def wait_for(self, name: str, *, timeout: float = 10.0, **match: Any) -> dict[str, Any]:
        """The first ``name`` event matching ``match``, once it has been emitted."""

        async def emitted() -> bool:
            return bool(self.of(name, **match))

        await wait_until(emitted, timeout=timeout, what=f"event {name} {match}")
        return self.of(name, **match)[0]


@contextlib.contextmanager
def capture_events() -> Iterator[EventLog]:
    log = EventLog()
    events.add_sink(log)
    try:
        yield log
    finally:
        events.remove_sink(log)


def named_url(url: str, name: str) -> str:
    """``url`` with a client name: every connection made from it is listed under ``name``
    by the server (``CLIENT LIST``)."""
    return f"{url}{'&' if urlsplit(url).query else '?'}client_name={name}"


async def wait_blocked(redis_url: str, name: str, *, timeout: float = 10.0) -> None:
    """Until a connection named ``name`` is blocked in the server (a worker of an engine on
    ``named_url(redis_url, name)`` waiting on its wake list: idle, with nothing to claim)."""
    admin = Redis.from_url(redis_url)

    async def blocked() -> bool:
        clients = await admin.client_list()
        return any(c.get("name") == name and "b" in c.get("flags", "") for c in clients)

    try:
        await wait_until(blocked, timeout=timeout, what=f"a connection {name} blocked")
    finally:
        await admin.aclose()


async def assert_nothing_created(engine: WorkflowEngine) -> None:
    """No execution record was written and no job was sent."""
    assert await engine.store.get_execution_count() == 0
    stats = await engine.get_queue_stats()
    assert (stats.queued, stats.scheduled, stats.running) == (0, 0, 0)
