"""The PostgreSQL store's resume tokens (a mixin of ``PostgresExecutionStore``).
Statements: sql.py."""

from __future__ import annotations

from datetime import datetime

import asyncpg

from spane_py.errors import StatePersistenceError
from spane_py.records import ResumeTokenRecord
from spane_py.stores.postgres import params, rows, sql
from spane_py.stores.postgres.connection import with_retry
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresResumeTokens(PostgresStoreBase):
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
