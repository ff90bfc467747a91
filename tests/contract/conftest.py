"""The ``contract_store`` fixture: every ``ExecutionStore`` runs the same contract suite.

Each test in ``tests/contract/test_*.py`` that takes ``contract_store`` runs once per store
listed in ``STORES`` (STYLE.md item 4, like saq's ``TestQueue``). The in-memory store stays
honest because it passes the same tests as the production store.

How to add a store (for example ``PostgresExecutionStore``):

1. Write an async context manager below that takes the pytest ``request`` and yields a
   FRESH, EMPTY store (tests count rows and page through "all" executions), then closes it::

       @asynccontextmanager
       async def _postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[ExecutionStore]:
           url = request.getfixturevalue("database_url")  # a session fixture: local or embedded
           store = PostgresExecutionStore(url)
           await store.truncate_all()  # or: a fresh schema per test
           try:
               yield store
           finally:
               await store.close()

2. Add it to ``STORES`` under a short id: ``STORES = {"memory": ..., "postgres": _postgres_store}``.
   Test ids become ``test_x[memory]`` / ``test_x[postgres]``; ``-k postgres`` selects one
   store. Use ``pytest.skip`` inside the factory when the store's server cannot be started.

Nothing else changes: the tests only use the ``ExecutionStore`` protocol. Tests of one
store's own knobs (the in-memory limits) live in their own, unparametrised files.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import pytest

from spane_py.stores.base import ExecutionStore
from spane_py.stores.memory import InMemoryExecutionStore
from tests.conftest import fresh_pg_schema

StoreFactory = Callable[[pytest.FixtureRequest], AbstractAsyncContextManager[ExecutionStore]]


@asynccontextmanager
async def _memory_store(request: pytest.FixtureRequest) -> AsyncIterator[ExecutionStore]:
    store = InMemoryExecutionStore()
    try:
        yield store
    finally:
        await store.close()


@asynccontextmanager
async def _postgres_store(request: pytest.FixtureRequest) -> AsyncIterator[ExecutionStore]:
    from spane_py.stores.postgres.store import PostgresExecutionStore

    url = request.getfixturevalue("database_url")  # a session fixture: local or embedded
    schema_sql = request.getfixturevalue("_pg_schema_sql")
    async with fresh_pg_schema(url, schema_sql) as schema:  # migrated, dropped afterwards
        store = PostgresExecutionStore(url, schema=schema, min_pool_size=1, max_pool_size=8)
        await store.start()
        try:
            yield store
        finally:
            await store.close()


# id -> factory. Add a store here (see the module docstring).
STORES: dict[str, StoreFactory] = {
    "memory": _memory_store,
    "postgres": _postgres_store,
}


@pytest.fixture(params=list(STORES))
async def contract_store(request: pytest.FixtureRequest) -> AsyncIterator[ExecutionStore]:
    """A fresh, empty store of each kind in ``STORES``."""
    async with STORES[request.param](request) as store:
        assert isinstance(store, ExecutionStore)  # runtime_checkable: the protocol's methods
        yield store
