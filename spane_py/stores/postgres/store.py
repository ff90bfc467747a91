"""``PostgresExecutionStore``: the durable ``ExecutionStore`` (asyncpg).

Transitions are optimistic: one statement reads the execution and its nodes (a consistent
snapshot), ``decide`` runs in Python, and one statement writes the result only if the
execution's ``revision`` is still the one read — two round trips, no transaction held open
across Python code. On a conflict (another worker wrote first) the transition is read and
decided again; after repeated conflicts it falls back to ``SELECT ... FOR UPDATE`` inside a
transaction, so a hot join cannot starve. A lost connection is retried the same way: the
guard makes a repeated write impossible, and ``decide`` sees what was already applied.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import asyncpg
import orjson

from spane_py.definitions.models import WorkflowDefinition
from spane_py.errors import ConfigurationError, ExecutionNotFoundError, StatePersistenceError
from spane_py.records import (
    CreatedExecution,
    Decide,
    DlqRecord,
    ExecutionPage,
    ExecutionRecord,
    ExecutionSnapshot,
    LogRecord,
    NodeRecord,
    PendingNode,
    Recent,
    ResumeTokenRecord,
    SavedWorkflow,
    SpanRecord,
    Transition,
    WorkflowVersionRecord,
)
from spane_py.state import ExecutionStatus
from spane_py.stores.postgres import params, rows, sql
from spane_py.stores.postgres.coalesce import StatementBatcher, write_item
from spane_py.stores.postgres.connection import (
    PoolOptions,
    configure_logging,
    create_pool,
    logger,
    with_retry,
)
from spane_py.stores.postgres.durability import durability_problems
from spane_py.stores.postgres.latest import LatestSnapshots
from spane_py.stores.postgres.triggers import PostgresTriggers

DEFAULT_SCHEMA = "spane"
OPTIMISTIC_ATTEMPTS = 3
# A new execution whose input is at most this long (characters of JSON) is remembered as
# created (see ``LatestSnapshots``); a larger one is read back by its first nodes' starts.
_REMEMBER_CREATED = 64 * 1024


class PostgresExecutionStore(PostgresTriggers):
    """Executions, node results, definitions and logs in PostgreSQL (schedules and webhook
    bindings: ``PostgresTriggers``).

    ``dsn`` defaults to ``$DATABASE_URL``; with neither (or with ``embedded=True``), an
    embedded server (pgserver) is started under ``embedded_dir`` and migrated. Against any
    other database the schema must already be at this code's revision (``spane db
    upgrade``), or ``start()`` refuses.
    """

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
        self._latest = LatestSnapshots()
        self._batch = StatementBatcher(self._with_connection)

    # Lifecycle -------------------------------------------------------------------
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

    async def __aenter__(self) -> PostgresExecutionStore:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

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

    # Workflows -------------------------------------------------------------------
    async def save_workflow(
        self, definition: WorkflowDefinition, *, content_hash: str, change_notes: str | None
    ) -> SavedWorkflow:
        body = orjson.dumps(definition.model_dump(mode="json")).decode()

        async def run() -> SavedWorkflow:
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.INSERT_WORKFLOW, definition.id)
                latest = await conn.fetchval(sql.LOCK_NEW_WORKFLOW, definition.id)
                if latest:
                    row = await conn.fetchrow(sql.LOCK_WORKFLOW, definition.id)
                    assert row is not None
                    if row["content_hash"] == content_hash:
                        if not row["active"]:
                            await conn.execute(sql.ACTIVATE, definition.id)
                        existing = await conn.fetchrow(sql.GET_VERSION, definition.id, latest)
                        assert existing is not None
                        return SavedWorkflow(rows.version(existing), created=False)
                version = (latest or 0) + 1
                await conn.execute(
                    sql.INSERT_VERSION,
                    definition.id,
                    version,
                    body,
                    content_hash,
                    change_notes,
                    datetime.now(UTC),
                )
                await conn.execute(sql.SET_LATEST, definition.id, version)
                saved = await conn.fetchrow(sql.GET_VERSION, definition.id, version)
                assert saved is not None
                return SavedWorkflow(rows.version(saved), created=True)

        return await with_retry(run, what="saving a workflow", retry_for_s=self.options.retry_for_s)

    async def get_workflow(
        self, workflow_id: str, version: int | None = None
    ) -> WorkflowVersionRecord | None:
        if version is None:
            row = await self._fetchrow("reading a workflow", sql.GET_LATEST_VERSION, workflow_id)
        else:
            if not 1 <= version <= 2**31 - 1:
                return None
            row = await self._fetchrow("reading a workflow", sql.GET_VERSION, workflow_id, version)
        return rows.version(row) if row is not None else None

    async def get_workflow_version(self, workflow_id: str) -> int | None:
        value = await self._fetchval("reading a workflow", sql.GET_LATEST_NUMBER, workflow_id)
        return int(value) if value else None

    async def list_workflows(
        self, *, active_only: bool = True, limit: int = 100, offset: int = 0
    ) -> list[WorkflowVersionRecord]:
        params.check_window(limit, offset)
        found = await self._fetch(
            "listing workflows", sql.LIST_WORKFLOWS, active_only, limit, offset
        )
        return [rows.version(r) for r in found]

    async def list_workflow_versions(self, workflow_id: str) -> list[WorkflowVersionRecord]:
        found = await self._fetch("listing workflow versions", sql.LIST_VERSIONS, workflow_id)
        return [rows.version(r) for r in found]

    async def deactivate_workflow(self, workflow_id: str) -> bool:
        async def run() -> str:
            return str(await self.pool.execute(sql.DEACTIVATE, workflow_id))

        status = await with_retry(
            run, what="deactivating a workflow", retry_for_s=self.options.retry_for_s
        )
        return status.endswith(" 1")

    async def get_workflow_count(self, *, active_only: bool = True) -> int:
        return int(await self._fetchval("counting workflows", sql.COUNT_WORKFLOWS, active_only))

    # Executions ------------------------------------------------------------------
    async def create_execution(
        self,
        record: ExecutionRecord,
        nodes: Sequence[NodeRecord],
        *,
        idempotency_after: datetime | None = None,
    ) -> CreatedExecution:
        args = (
            record.execution_id,
            record.workflow_id,
            record.workflow_version,
            record.status.value,
            record.initial_data,
            params.metadata_json(record.metadata),
            record.parent_execution_id,
            record.parent_node_id,
            record.depth,
            record.priority,
            record.idempotency_key,
            record.created_at,
            record.started_at,
            record.completed_at,
            record.error,
            params.nodes_json(nodes),
        )
        lost_connection = False

        async def run() -> CreatedExecution:
            nonlocal lost_connection
            try:
                created = await self.pool.fetchval(sql.CREATE_EXECUTION, *args)
            except asyncpg.UniqueViolationError as exc:
                if lost_connection and await self.get_execution(record.execution_id):
                    # An earlier attempt committed; only its answer was lost.
                    return CreatedExecution(record, created=True)
                raise StatePersistenceError(
                    f"execution {record.execution_id!r} already exists",
                    execution_id=record.execution_id,
                ) from exc
            except BaseException:
                lost_connection = True
                raise
            if created:
                if len(record.initial_data) <= _REMEMBER_CREATED:
                    # Known as written (a new row's revision is 0): the first nodes' starts
                    # in this process need not read it back.
                    self._latest.saw(ExecutionSnapshot(record, {n.node_id: n for n in nodes}, 0))
                return CreatedExecution(record, created=True)
            row = await self.pool.fetchrow(
                sql.GET_EXECUTION_BY_KEY, record.workflow_id, record.idempotency_key
            )
            if row is not None and idempotency_after is not None:
                existing = rows.execution(row)
                if existing.created_at < idempotency_after:
                    # Expired: release the key and try again (a concurrent creator that
                    # wins the key in between is the one the caller gets).
                    await self.pool.execute(
                        sql.RELEASE_KEY,
                        record.workflow_id,
                        record.idempotency_key,
                        idempotency_after,
                    )
                    return await run()
            if row is None:  # pragma: no cover - the key was deleted in between
                raise StatePersistenceError("an idempotency key vanished while it was used")
            return CreatedExecution(rows.execution(row), created=False)

        return await with_retry(
            run, what="creating an execution", retry_for_s=self.options.retry_for_s
        )

    async def create_executions(
        self, items: Sequence[tuple[ExecutionRecord, Sequence[NodeRecord]]]
    ) -> None:
        if any(r.idempotency_key is not None for r, _ in items):
            raise ValueError("create_executions takes no idempotency keys")
        payload = orjson.dumps(
            [
                {
                    "execution_id": r.execution_id,
                    "workflow_id": r.workflow_id,
                    "workflow_version": r.workflow_version,
                    "status": r.status.value,
                    "initial_data": r.initial_data,
                    "metadata": dict(r.metadata),
                    "parent_execution_id": r.parent_execution_id,
                    "parent_node_id": r.parent_node_id,
                    "depth": r.depth,
                    "priority": r.priority,
                    "created_at": r.created_at,
                    "started_at": r.started_at,
                    "completed_at": r.completed_at,
                    "error": r.error,
                    "nodes": [params.node_item(n) for n in nodes],
                }
                for r, nodes in items
            ]
        ).decode()
        lost_connection = False

        async def run() -> None:
            nonlocal lost_connection
            try:
                await self.pool.fetchval(sql.CREATE_EXECUTIONS, payload)
            except asyncpg.UniqueViolationError as exc:
                if lost_connection and items and await self.get_execution(items[0][0].execution_id):
                    return  # an earlier attempt committed; only its answer was lost
                raise StatePersistenceError("an execution id of the batch already exists") from exc
            except BaseException:
                lost_connection = True
                raise

        await with_retry(run, what="creating executions", retry_for_s=self.options.retry_for_s)

    async def get_execution(self, execution_id: str) -> ExecutionRecord | None:
        if not params.is_uuid(execution_id):
            return None
        row = await self._fetchrow("reading an execution", sql.GET_EXECUTION, execution_id)
        return rows.execution(row) if row is not None else None

    async def find_execution_ids(self, prefix: str, *, limit: int = 10) -> list[str]:
        params.check_window(limit)
        bounds = params.uuid_prefix_range(prefix)
        if bounds is None or limit == 0:
            return []
        found = await self._fetch("finding executions", sql.FIND_EXECUTION_IDS, *bounds, limit)
        return [r["execution_id"] for r in found]

    async def get_snapshot(self, execution_id: str) -> ExecutionSnapshot | None:
        if not params.is_uuid(execution_id):
            return None

        async def run() -> Any:
            return await self._batch.read(execution_id)  # batched with the workers' reads

        row = await with_retry(
            run, what="reading an execution", retry_for_s=self.options.retry_for_s
        )
        return None if row is None else self._snapshot(execution_id, row)

    async def get_node_results(self, execution_id: str) -> dict[str, NodeRecord]:
        if not params.is_uuid(execution_id):
            return {}
        found = await self._fetch("reading node results", sql.GET_NODES, execution_id)
        return {n.node_id: n for n in map(rows.node, found)}

    async def transition(
        self,
        execution_id: str,
        decide: Decide,
        *,
        cached: ExecutionSnapshot | None = None,
        recent: Recent | None = None,
    ) -> Transition:
        if not params.is_uuid(execution_id):
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )

        async def run() -> Transition:
            if recent is not None:
                known = self._latest.learned_after(execution_id, recent.since)
                if known is not None:
                    answer = decide(known)
                    if answer.is_noop and recent.stands(answer):
                        return answer
            # With ``cached``, the caller accepts a decision on a possibly stale snapshot
            # (the write is guarded): use the freshest one known, read only on a conflict.
            usable = self._latest.freshest(execution_id, cached) if cached is not None else None
            if usable is not None:
                done = await self._transition_once(execution_id, decide, cached=usable)
                if done is not None:
                    return done
            for _ in range(OPTIMISTIC_ATTEMPTS):
                done = await self._transition_once(execution_id, decide)
                if done is not None:
                    return done
            return await self._transition_locked(execution_id, decide)

        async with self._latest.lock(execution_id):
            return await with_retry(
                run, what="writing an execution transition", retry_for_s=self.options.retry_for_s
            )

    async def _transition_once(
        self,
        execution_id: str,
        decide: Decide,
        *,
        cached: ExecutionSnapshot | None = None,
    ) -> Transition | None:
        """One try: decide on a snapshot (``cached``, or read), write if nothing changed.
        None: somebody else wrote first (or a cached no-op proved nothing) — try again."""
        if cached is not None:
            snapshot = cached
        else:
            snapshot = self._snapshot(execution_id, await self._batch.read(execution_id))
        result = decide(snapshot)
        if result.is_noop:
            # Decided on a cached snapshot, "nothing to do" may be stale news: read.
            return None if cached is not None else result
        params.check_same_execution(execution_id, result)
        assert snapshot.revision is not None
        if not await self._batch.write(execution_id, snapshot.revision, result):
            self._latest.forget(execution_id)
            return None
        self._latest.wrote(snapshot, result)
        return result

    async def _transition_locked(self, execution_id: str, decide: Decide) -> Transition:
        """The fallback under contention: lock the row, read, decide, write, commit."""
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(sql.LOCK_EXECUTION, execution_id)
            snapshot = self._snapshot(execution_id, await conn.fetchrow(sql.SNAPSHOT, execution_id))
            result = decide(snapshot)
            if result.is_noop:
                return result
            params.check_same_execution(execution_id, result)
            assert snapshot.revision is not None
            item = write_item(execution_id, snapshot.revision, result)
            written = await conn.fetch(sql.WRITE_MANY, orjson.dumps([item]).decode())
            assert written, "the row lock rules out a conflict"
            self._latest.wrote(snapshot, result)
            return result

    def _snapshot(self, execution_id: str, row: Any) -> ExecutionSnapshot:
        if row is None:
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )
        snapshot = rows.snapshot(row)
        self._latest.saw(snapshot)
        return snapshot

    async def update_execution_metadata(
        self, execution_id: str, metadata: Mapping[str, Any]
    ) -> None:
        if not params.is_uuid(execution_id):
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )

        async def run() -> str:
            return str(
                await self.pool.execute(
                    sql.MERGE_METADATA, execution_id, params.metadata_json(metadata)
                )
            )

        self._latest.forget(execution_id)  # its revision moves on
        status = await with_retry(
            run, what="updating execution metadata", retry_for_s=self.options.retry_for_s
        )
        if status.endswith(" 0"):
            raise ExecutionNotFoundError(
                f"execution {execution_id!r} does not exist", execution_id=execution_id
            )

    async def list_executions(
        self,
        *,
        workflow_id: str | None = None,
        status: ExecutionStatus | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> ExecutionPage:
        params.check_window(limit)
        if cursor is not None and not params.is_uuid(cursor):
            raise ValueError(f"invalid cursor {cursor!r}")
        found = await self._fetch(
            "listing executions",
            sql.LIST_EXECUTIONS,
            workflow_id,
            ExecutionStatus(status).value if status is not None else None,
            since,
            until,
            cursor,
            limit + 1,
        )
        items = tuple(rows.execution(r) for r in found[:limit])
        more = len(found) > limit
        return ExecutionPage(items, items[-1].execution_id if more and items else None)

    async def get_execution_count(
        self, *, workflow_id: str | None = None, status: ExecutionStatus | None = None
    ) -> int:
        return int(
            await self._fetchval(
                "counting executions",
                sql.COUNT_EXECUTIONS,
                workflow_id,
                ExecutionStatus(status).value if status is not None else None,
            )
        )

    async def get_child_executions(self, execution_id: str) -> list[ExecutionRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading child executions", sql.CHILD_EXECUTIONS, execution_id)
        return [rows.execution(r) for r in found]

    async def get_parent_execution(self, execution_id: str) -> ExecutionRecord | None:
        if not params.is_uuid(execution_id):
            return None
        row = await self._fetchrow("reading a parent execution", sql.PARENT_EXECUTION, execution_id)
        return rows.execution(row) if row is not None else None

    async def list_pending_nodes(
        self, *, older_than: datetime, limit: int = 500
    ) -> list[PendingNode]:
        params.check_window(limit)
        found = await self._fetch("listing pending nodes", sql.PENDING_NODES, older_than, limit)
        return [rows.pending_node(r) for r in found]

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime
    ) -> list[ExecutionRecord]:
        limit = min(max(limit, 0), params.MAX_BIGINT)  # beyond: "unlimited", not a driver error

        async def run() -> list[asyncpg.Record]:
            # Two statements in one transaction: the count must be read after the lock is
            # held, so that it includes what the previous holder admitted.
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql.LOCK_ADMISSION, workflow_id)
                return list(await conn.fetch(sql.ADMIT_QUEUED, workflow_id, limit, now))

        found = await with_retry(
            run, what="admitting queued executions", retry_for_s=self.options.retry_for_s
        )
        admitted = sorted((rows.execution(r) for r in found), key=lambda r: r.execution_id)
        for record in admitted:
            # The revision moved on: a cached snapshot would only fail its guard.
            self._latest.forget(record.execution_id)
        return admitted

    async def list_queued_workflows(self) -> list[str]:
        found = await self._fetch("listing queued workflows", sql.QUEUED_WORKFLOWS)
        return [r["workflow_id"] for r in found]

    # Dead-letter queue -----------------------------------------------------------
    async def list_dlq_items(
        self, *, limit: int = 100, offset: int = 0, include_retried: bool = False
    ) -> list[DlqRecord]:
        params.check_window(limit, offset)
        found = await self._fetch(
            "listing dead-letter items", sql.LIST_DLQ, include_retried, limit, offset
        )
        return [rows.dlq(r) for r in found]

    async def get_dlq_item(self, dlq_id: int) -> DlqRecord | None:
        if not params.is_bigint(dlq_id):
            return None
        row = await self._fetchrow("reading a dead-letter item", sql.GET_DLQ, dlq_id)
        return rows.dlq(row) if row is not None else None

    async def mark_dlq_retried(self, dlq_id: int, at: datetime) -> bool:
        if not params.is_bigint(dlq_id):
            return False
        return await self._update_one(
            "marking a dead-letter item retried", sql.MARK_DLQ_RETRIED, dlq_id, at
        )

    async def purge_dlq(self, *, older_than: datetime | None = None) -> int:
        status = await self._execute("purging dead-letter items", sql.PURGE_DLQ, older_than)
        return int(status.rsplit(" ", 1)[-1])

    async def get_dlq_count(self, *, include_retried: bool = False) -> int:
        return int(
            await self._fetchval("counting dead-letter items", sql.COUNT_DLQ, include_retried)
        )

    # Resume tokens ---------------------------------------------------------------
    async def save_token(self, record: ResumeTokenRecord) -> None:
        if not params.is_uuid(record.execution_id):
            raise StatePersistenceError(
                f"execution {record.execution_id!r} does not exist",
                execution_id=record.execution_id,
            )
        args = (
            record.token,
            record.execution_id,
            record.node_id,
            record.generation,
            record.created_at,
            record.expires_at,
            record.used_at,
            record.revoked_at,
        )
        lost_connection = False

        async def run() -> None:
            nonlocal lost_connection
            try:
                await self.pool.execute(sql.INSERT_TOKEN, *args)
            except asyncpg.UniqueViolationError as exc:
                if lost_connection and await self.get_token(record.token) == record:
                    return  # an earlier attempt committed; only its answer was lost
                raise StatePersistenceError(
                    "this resume token exists already", execution_id=record.execution_id
                ) from exc
            except BaseException:
                lost_connection = True
                raise

        await with_retry(run, what="saving a resume token", retry_for_s=self.options.retry_for_s)

    async def get_token(self, token: str) -> ResumeTokenRecord | None:
        row = await self._fetchrow("reading a resume token", sql.GET_TOKEN, token)
        return rows.token(row) if row is not None else None

    async def list_tokens(
        self, *, execution_id: str | None = None, active_only: bool = True, now: datetime
    ) -> list[ResumeTokenRecord]:
        if execution_id is not None and not params.is_uuid(execution_id):
            return []
        found = await self._fetch(
            "listing resume tokens", sql.LIST_TOKENS, execution_id, active_only, now
        )
        return [rows.token(r) for r in found]

    async def set_token_used(self, token: str, at: datetime) -> bool:
        return await self._update_one("using a resume token", sql.USE_TOKEN, token, at)

    async def revoke_token(self, token: str, at: datetime) -> bool:
        return await self._update_one("revoking a resume token", sql.REVOKE_TOKEN, token, at)

    # Logs ------------------------------------------------------------------------
    async def add_log(self, record: LogRecord) -> None:
        await self.add_logs([record])

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        entries = [
            {
                "execution_id": r.execution_id,
                "node_id": r.node_id,
                "level": r.level,
                "message": r.message,
                "fields": dict(r.fields),
                "logged_at": r.timestamp,
            }
            for r in records
            if params.is_uuid(r.execution_id)
        ]
        if not entries:
            return
        payload = orjson.dumps(entries).decode()

        async def run() -> None:
            await self.pool.execute(sql.ADD_LOGS, payload)

        await with_retry(run, what="writing logs", retry_for_s=self.options.retry_for_s)

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading spans", sql.GET_SPANS, execution_id)
        return [rows.span(r) for r in found]

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("reading logs", sql.GET_LOGS, execution_id, node_id)
        return [rows.log(r) for r in found]
