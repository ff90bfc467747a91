"""The PostgreSQL store's writes to executions: creating them, transitions, metadata and
admission, and the snapshots transitions decide on (a mixin of
``PostgresExecutionStore``). Everything here keeps ``LatestSnapshots`` up to date.

Transitions are optimistic: one statement reads the execution and its nodes (a consistent
snapshot), ``decide`` runs in Python, and one statement writes the result only if the
execution's ``revision`` is still the one read — two round trips, no transaction held open
across Python code. On a conflict (another worker wrote first) the transition is read and
decided again; after repeated conflicts it falls back to ``SELECT ... FOR UPDATE`` inside a
transaction, so a hot join cannot starve. A lost connection is retried the same way: the
guard makes a repeated write impossible, and ``decide`` sees what was already applied.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import asyncpg
import orjson

from spane_py.errors import ExecutionNotFoundError, StatePersistenceError
from spane_py.records import (
    CreatedExecution,
    Decide,
    ExecutionRecord,
    ExecutionSnapshot,
    NodeRecord,
    Recent,
    Transition,
)
from spane_py.stores.postgres import params, rows, sql, sql_backlog
from spane_py.stores.postgres.coalesce import write_item
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.queries import PostgresQueries

OPTIMISTIC_ATTEMPTS = 3
# A new execution whose input is at most this long (characters of JSON) is remembered as
# created (see ``LatestSnapshots``); a larger one is read back by its first nodes' starts.
_REMEMBER_CREATED = 64 * 1024


class PostgresTransitions(PostgresQueries):
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
            record.concurrency_key,
            record.output,
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
                    "concurrency_key": r.concurrency_key,
                    "output": r.output,
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

    async def get_snapshot(self, execution_id: str) -> ExecutionSnapshot | None:
        if not params.is_uuid(execution_id):
            return None

        async def run() -> Any:
            return await self._batch.read(execution_id)  # batched with the workers' reads

        row = await with_retry(
            run, what="reading an execution", retry_for_s=self.options.retry_for_s
        )
        return None if row is None else self._snapshot(execution_id, row)

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

    async def admit_queued(
        self, workflow_id: str, limit: int, now: datetime, *, key_limit: int | None = None
    ) -> list[ExecutionRecord]:
        limit = min(max(limit, 0), params.MAX_BIGINT)  # beyond: "unlimited", not a driver error
        statement, args = sql_backlog.ADMIT_QUEUED, [workflow_id, limit, now]
        if key_limit is not None:
            statement = sql_backlog.ADMIT_QUEUED_KEYED
            args.append(min(max(key_limit, 0), params.MAX_BIGINT))

        async def run() -> list[asyncpg.Record]:
            # Two statements in one transaction: the counts must be read after the lock is
            # held, so that they include what the previous holder admitted.
            async with self.pool.acquire() as conn, conn.transaction():
                await conn.execute(sql_backlog.LOCK_ADMISSION, workflow_id)
                return list(await conn.fetch(statement, *args))

        found = await with_retry(
            run, what="admitting queued executions", retry_for_s=self.options.retry_for_s
        )
        admitted = sorted((rows.execution(r) for r in found), key=lambda r: r.execution_id)
        for record in admitted:
            # The revision moved on: a cached snapshot would only fail its guard.
            self._latest.forget(record.execution_id)
        return admitted
