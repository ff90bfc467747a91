"""The PostgreSQL store's artifacts (a mixin of ``PostgresExecutionStore``): ``bytea`` rows
of the table ``artifacts``. Statements: sql_artifacts.py."""

from __future__ import annotations

from spane_py.errors import ExecutionNotFoundError
from spane_py.records import ArtifactRecord
from spane_py.stores.postgres import params, rows, sql_artifacts
from spane_py.stores.postgres.store_base import PostgresStoreBase


class PostgresArtifacts(PostgresStoreBase):
    async def put_artifact(self, record: ArtifactRecord, data: bytes) -> None:
        if record.size != len(data):
            raise ValueError(f"artifact {record.name!r}: size {record.size} is not len(data)")
        eid = record.execution_id
        written = params.is_uuid(eid) and (
            await self._execute(
                "writing an artifact",
                sql_artifacts.PUT_ARTIFACT,
                eid,
                record.name,
                record.node_id,
                record.content_type,
                record.size,
                data,
                record.created_at,
            )
        ).endswith(" 1")
        if not written:
            raise ExecutionNotFoundError(f"execution {eid!r} does not exist", execution_id=eid)

    async def get_artifact(
        self, execution_id: str, name: str
    ) -> tuple[ArtifactRecord, bytes] | None:
        if not params.is_uuid(execution_id):
            return None
        row = await self._fetchrow(
            "reading an artifact", sql_artifacts.GET_ARTIFACT, execution_id, name
        )
        return None if row is None else (rows.artifact(row), bytes(row["data"]))

    async def list_artifacts(self, execution_id: str) -> list[ArtifactRecord]:
        if not params.is_uuid(execution_id):
            return []
        found = await self._fetch("listing artifacts", sql_artifacts.LIST_ARTIFACTS, execution_id)
        return [rows.artifact(r) for r in found]
