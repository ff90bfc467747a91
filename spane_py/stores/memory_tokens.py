"""The in-memory store's resume tokens (``TokenStore``; a part of
``InMemoryExecutionStore``). Token records are frozen and immutable: handed out as they
are."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from spane_py.errors import StatePersistenceError
from spane_py.records import ResumeTokenRecord
from spane_py.stores.memory_state import MemoryState


class MemoryTokens(MemoryState):
    async def save_token(self, record: ResumeTokenRecord) -> None:
        if record.token in self._tokens:
            raise StatePersistenceError("this resume token exists already")
        self._tokens[record.token] = record

    async def get_token(self, token: str) -> ResumeTokenRecord | None:
        return self._tokens.get(token)

    async def list_tokens(
        self, *, execution_id: str | None = None, active_only: bool = True, now: datetime
    ) -> list[ResumeTokenRecord]:
        found = [
            t
            for t in self._tokens.values()
            if (execution_id is None or t.execution_id == execution_id)
            and (not active_only or t.state(now) == "active")
        ]
        return sorted(found, key=lambda t: (t.created_at, t.token))

    async def set_token_used(self, token: str, at: datetime) -> bool:
        record = self._usable_token(token)
        if record is not None:
            self._tokens[token] = replace(record, used_at=at)
        return record is not None

    async def revoke_token(self, token: str, at: datetime) -> bool:
        record = self._usable_token(token)
        if record is not None:
            self._tokens[token] = replace(record, revoked_at=at)
        return record is not None

    def _usable_token(self, token: str) -> ResumeTokenRecord | None:
        record = self._tokens.get(token)
        if record is None or record.used_at is not None or record.revoked_at is not None:
            return None
        return record
