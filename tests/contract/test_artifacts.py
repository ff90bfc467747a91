"""Contract: artifacts, named blobs of an execution (``ArtifactStore``)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from spane_py.errors import ExecutionNotFoundError
from spane_py.records import ArtifactRecord
from spane_py.stores.base import ExecutionStore

from .records import at, execution

BLOB = bytes(range(256)) * 3 + b"\x00 after a NUL"


def artifact(execution_id: str, name: str, data: bytes, **fields: object) -> ArtifactRecord:
    values: dict[str, object] = {
        "content_type": "application/octet-stream",
        "created_at": at(1.000001),
        "node_id": "a",
        **fields,
    }
    return ArtifactRecord(execution_id=execution_id, name=name, size=len(data), **values)  # type: ignore[arg-type]


class TestArtifacts:
    async def test_an_artifact_round_trips(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        eid = record.execution_id
        put = artifact(eid, "report/2024 é.bin", BLOB)
        await contract_store.put_artifact(put, BLOB)
        assert await contract_store.get_artifact(eid, "report/2024 é.bin") == (put, BLOB)
        empty = artifact(eid, "empty", b"", content_type="text/plain", node_id=None)
        await contract_store.put_artifact(empty, b"")
        assert await contract_store.get_artifact(eid, "empty") == (empty, b"")
        assert await contract_store.list_artifacts(eid) == [empty, put]  # by name

    async def test_putting_a_name_again_replaces_it(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        eid = record.execution_id
        await contract_store.put_artifact(artifact(eid, "x", b"first"), b"first")
        again = artifact(eid, "x", b"[1]", content_type="application/json", created_at=at(2))
        await contract_store.put_artifact(again, b"[1]")
        assert await contract_store.get_artifact(eid, "x") == (again, b"[1]")
        assert await contract_store.list_artifacts(eid) == [again]

    async def test_artifacts_belong_to_their_execution(
        self, contract_store: ExecutionStore
    ) -> None:
        one, two = execution(), execution()
        for record in (one, two):
            await contract_store.create_execution(record, [])
        mine = artifact(one.execution_id, "x", b"one")
        await contract_store.put_artifact(mine, b"one")
        assert await contract_store.get_artifact(two.execution_id, "x") is None
        assert await contract_store.get_artifact(one.execution_id, "y") is None
        assert await contract_store.list_artifacts(two.execution_id) == []
        assert await contract_store.get_artifact("no-such-execution", "x") is None
        assert await contract_store.list_artifacts("no-such-execution") == []

    async def test_an_unknown_execution_is_refused(self, contract_store: ExecutionStore) -> None:
        ghost = execution()
        for eid in (ghost.execution_id, "not-a-uuid"):
            with pytest.raises(ExecutionNotFoundError):
                await contract_store.put_artifact(artifact(eid, "x", b"1"), b"1")
        assert await contract_store.list_artifacts(ghost.execution_id) == []

    async def test_a_wrong_size_is_refused(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        wrong = replace(artifact(record.execution_id, "x", b"12"), size=3)
        with pytest.raises(ValueError, match="size"):
            await contract_store.put_artifact(wrong, b"12")
        assert await contract_store.list_artifacts(record.execution_id) == []
