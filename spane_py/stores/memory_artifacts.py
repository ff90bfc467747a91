"""The in-memory store's artifacts (``ArtifactStore``; a part of ``InMemoryExecutionStore``).

Bounded like the store's other contents: the artifacts of all executions together hold at
most ``max_artifact_bytes`` (256 MiB). A put that would go over it first drops the
artifacts of the least recently used finished executions (as the store drops finished
executions themselves); when the artifacts of executions that have not finished are all
that is left, the put is refused (``StatePersistenceError``, naming the bound). Artifacts
go with their execution when it is dropped.
"""

from __future__ import annotations

from spane_py.errors import ExecutionNotFoundError, StatePersistenceError
from spane_py.records import ArtifactRecord
from spane_py.stores.memory_state import MemoryState


class MemoryArtifacts(MemoryState):
    async def put_artifact(self, record: ArtifactRecord, data: bytes) -> None:
        self.cleanup()
        if record.size != len(data):
            raise ValueError(f"artifact {record.name!r}: size {record.size} is not len(data)")
        eid = record.execution_id
        if eid not in self._executions:
            raise ExecutionNotFoundError(f"execution {eid!r} does not exist", execution_id=eid)
        held = self._artifacts.get(eid, {})
        replaced = held.get(record.name)
        grows = len(data) - (len(replaced[1]) if replaced is not None else 0)
        self._make_room(grows, keep=eid)
        self._artifacts.setdefault(eid, {})[record.name] = (record, bytes(data))
        self._artifact_bytes += grows
        self._executions.move_to_end(eid)

    def _make_room(self, grows: int, *, keep: str) -> None:
        """Drop the artifacts of finished executions, least recently used first, until
        ``grows`` more bytes fit; refuse when they cannot."""
        if self._artifact_bytes + grows <= self.max_artifact_bytes:
            return
        for execution_id in list(self._executions):
            if self._artifact_bytes + grows <= self.max_artifact_bytes:
                return
            if execution_id != keep and self._executions[execution_id].status.is_terminal:
                self._drop_artifacts(execution_id)
        if self._artifact_bytes + grows > self.max_artifact_bytes:
            raise StatePersistenceError(
                f"the in-memory store keeps at most {self.max_artifact_bytes} bytes of "
                f"artifacts (max_artifact_bytes), held by executions that have not finished",
                execution_id=keep,
            )

    async def get_artifact(
        self, execution_id: str, name: str
    ) -> tuple[ArtifactRecord, bytes] | None:
        self.cleanup()
        return self._artifacts.get(execution_id, {}).get(name)

    async def list_artifacts(self, execution_id: str) -> list[ArtifactRecord]:
        self.cleanup()
        held = self._artifacts.get(execution_id, {})
        return [held[name][0] for name in sorted(held)]
