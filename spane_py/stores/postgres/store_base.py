"""The PostgreSQL store's base: its settings, ``start`` and ``close`` (the pool, the embedded
server, migrations), and the statements every part of the store runs through
``with_retry`` (a lost connection is retried for ``retry_for_seconds``).

The other parts of ``PostgresExecutionStore`` (transitions.py, queries.py,
workflow_versions.py, dead_letters.py, resume_tokens.py, logs.py, triggers.py) are mixins
of this class.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg

from spane_py.errors import ConfigurationError, StatePersistenceError
from spane_py.stores.postgres.coalesce import StatementBatcher
from spane_py.stores.postgres.connection import (
    PoolOptions,
    configure_logging,
    create_pool,
    logger,
    with_retry,
)
from spane_py.stores.postgres.durability import durability_problems
from spane_py.stores.postgres.latest import LatestSnapshots

DEFAULT_SCHEMA = "spane"


class PostgresStoreBase:
    """Settings, pool and retried statements of ``PostgresExecutionStore`` (its docstring
    says what the arguments mean)."""

    def __init__(
        self,
        dsn: str | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        min_pool_size: int = 2,
        max_pool_size: int = 20,
        statement_timeout_ms: int = 30_000,
        retry_for_seconds: float = 30.0,
        apply_migrations: bool | None = None,
        embedded: bool = False,
        embedded_dir: str = ".spane/pg",
    ) -> None:
        from spane_py.stores.postgres.migrate import validate_schema_name

        validate_schema_name(schema)
        if not 1 <= min_pool_size <= max_pool_size:
            raise ConfigurationError(
                f"pool sizes must satisfy 1 <= min ({min_pool_size}) <= max ({max_pool_size})"
            )
        self.schema = schema
        self.options = PoolOptions(
            min_size=min_pool_size,
            max_size=max_pool_size,
            statement_timeout_ms=statement_timeout_ms,
            retry_for_s=retry_for_seconds,
        )
        self._dsn = dsn
        self._apply_migrations = apply_migrations
        if embedded and dsn:
            raise ConfigurationError("give either a dsn or embedded=True, not both")
        self._force_embedded = embedded
        self._embedded_dir = embedded_dir
        self._embedded: Any = None
        self._pool: asyncpg.Pool | None = None
        # What this process knows of the executions it transitions, and the batched snapshot
        # reads and guarded writes of transitions (both used by transitions.py).
        self._latest = LatestSnapshots()
        self._batch = StatementBatcher(self._with_connection)

    async def start(self) -> None:
        if self._pool is not None:
            return
        import os

        from spane_py.stores.postgres import migrate

        configure_logging()  # SPANE_DB_LOG, before anything worth logging happens
        dsn = None if self._force_embedded else self._dsn or os.environ.get("DATABASE_URL")
        migrate_now = self._apply_migrations
        if not dsn:
            from spane_py.embedded import EmbeddedPostgres

            self._embedded = EmbeddedPostgres(self._embedded_dir)
            dsn = await self._embedded.astart()
            migrate_now = True if migrate_now is None else migrate_now
        self._dsn = dsn
        if migrate_now:
            logger.info("migrating schema %s of %s", self.schema, migrate.redact(dsn))
            await migrate.upgrade(dsn, schema=self.schema)
        pool = await create_pool(dsn, self.schema, self.options)
        try:
            async with pool.acquire() as conn:
                await migrate.check_schema(conn, self.schema)
        except BaseException:
            await pool.close()
            raise
        self._pool = pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
            logger.info("pool closed")
        if self._embedded is not None:
            self._embedded.stop()
            self._embedded = None

    async def durability_warnings(self) -> list[str]:
        """Settings of this store's sessions that let PostgreSQL lose commits it already
        acknowledged when the server crashes (docs/deploying.md, "Durability"); empty when
        none. Workers log them at start."""
        row = await self._fetchrow(
            "reading the durability settings",
            "SELECT current_setting('synchronous_commit') AS synchronous_commit, "
            "current_setting('fsync') AS fsync",
        )
        assert row is not None
        return durability_problems(row["synchronous_commit"], row["fsync"])

    @property
    def dsn(self) -> str | None:
        return self._dsn

    @property
    def shared(self) -> bool:
        return True

    def describe(self) -> str:
        from spane_py.stores.postgres.migrate import redact

        where = redact(self._dsn) if self._dsn else f"the embedded server in {self._embedded_dir}"
        return f"PostgreSQL {where}, schema {self.schema!r}"

    @property
    def embedded(self) -> bool:
        """Whether this store runs on the embedded server (known once started)."""
        return self._embedded is not None

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise StatePersistenceError(
                "the PostgreSQL store is not started: `await store.start()` (the engine does "
                "it in `start()`)"
            )
        return self._pool

    async def _with_connection(self, fn: Callable[[asyncpg.Connection], Awaitable[Any]]) -> Any:
        async with self.pool.acquire() as conn:
            return await fn(conn)

    async def _fetch(self, what: str, query: str, *args: Any) -> list[asyncpg.Record]:
        async def run() -> list[asyncpg.Record]:
            return list(await self.pool.fetch(query, *args))

        return await with_retry(run, what=what, retry_for_s=self.options.retry_for_s)

    async def _fetchrow(self, what: str, query: str, *args: Any) -> asyncpg.Record | None:
        async def run() -> asyncpg.Record | None:
            return await self.pool.fetchrow(query, *args)

        return await with_retry(run, what=what, retry_for_s=self.options.retry_for_s)

    async def _fetchval(self, what: str, query: str, *args: Any) -> Any:
        async def run() -> Any:
            return await self.pool.fetchval(query, *args)

        return await with_retry(run, what=what, retry_for_s=self.options.retry_for_s)

    async def _execute(self, what: str, query: str, *args: Any) -> str:
        async def run() -> str:
            return str(await self.pool.execute(query, *args))

        return await with_retry(run, what=what, retry_for_s=self.options.retry_for_s)

    async def _update_one(self, what: str, query: str, *args: Any) -> bool:
        """A guarded UPDATE of one row; whether it changed the row. The query takes one
        more parameter, true on a retry after an error: the answer of the first try may
        have been lost after it committed, so the row as that try left it counts as
        changed (else a retried ``set_token_used`` would report a token it used as used)."""
        retrying = False

        async def run() -> str:
            nonlocal retrying
            try:
                return str(await self.pool.execute(query, *args, retrying))
            except BaseException:
                retrying = True
                raise

        status = await with_retry(run, what=what, retry_for_s=self.options.retry_for_s)
        return status.endswith(" 1")
