"""Fixtures for the integration tests (real Redis, in-process workers)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from spane_py import ExecutionStore, InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from tests.conftest import fresh_pg_schema
from tests.integration._support import Recorder

EngineFactory = Callable[..., Awaitable[WorkflowEngine]]
StoreFactory = Callable[[], ExecutionStore]


@pytest.fixture(params=["memory", "postgres"])
async def new_store(request: pytest.FixtureRequest) -> AsyncIterator[StoreFactory]:
    """Makes stores of one kind, per parameter: in memory, or PostgreSQL in a fresh schema of
    this test's (migrated, dropped afterwards); the test runs once with each."""
    if request.param == "memory":
        yield InMemoryExecutionStore
        return
    from spane_py.stores.postgres.store import PostgresExecutionStore

    url = request.getfixturevalue("database_url")
    schema_sql = request.getfixturevalue("_pg_schema_sql")
    async with fresh_pg_schema(url, schema_sql) as schema:
        yield lambda: PostgresExecutionStore(url, schema=schema, min_pool_size=1, max_pool_size=8)


@pytest.fixture
def rec() -> Recorder:
    return Recorder()


@pytest.fixture
async def make_engine(redis_url: str) -> AsyncIterator[EngineFactory]:
    """Start more engines on the same Redis: ``await make_engine(registry, store, key_prefix=)``.

    Each gets a fresh key prefix unless one is given; all are stopped, purged and closed
    at the end of the test.
    """
    made: list[WorkflowEngine] = []

    async def make(
        registry: NodeRegistry | None = None,
        store: ExecutionStore | None = None,
        *,
        key_prefix: str | None = None,
        **options: Any,
    ) -> WorkflowEngine:
        options.setdefault("poll_delay", 0.2)
        eng = WorkflowEngine(
            registry if registry is not None else NodeRegistry(),
            store if store is not None else InMemoryExecutionStore(),
            redis_url=redis_url,
            key_prefix=key_prefix or f"t{uuid.uuid4().hex[:12]}",
            **options,
        )
        await eng.start()
        made.append(eng)
        return eng

    try:
        yield make
    finally:
        for eng in reversed(made):
            await eng.stop_workers(grace_seconds=1.0)
            await eng.purge()
            await eng.close()
