# TEMPORARY (lead's dev scaffolding until tests/conftest.py gets database_url/pg_schema).
from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager

import asyncpg
import pytest

from spane_py.stores.postgres import migrate


@pytest.fixture(scope="session")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url
        return
    from spane_py.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(tmp_path_factory.mktemp("pg") / "data")
    try:
        yield server.start()
    finally:
        server.stop()


@asynccontextmanager
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    schema = "t_" + uuid.uuid4().hex[:12]
    await migrate.upgrade(database_url, schema=schema)
    try:
        yield schema
    finally:
        conn = await asyncpg.connect(database_url)
        await conn.execute(f"DROP SCHEMA {schema} CASCADE")
        await conn.close()
