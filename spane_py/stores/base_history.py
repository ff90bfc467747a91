"""The store protocols of data kept over an execution's life besides its state: artifacts
(``ArtifactStore``) and the event history (``EventStore``). Part of the store contract
(``spane_py.stores.base``, which re-exports both and puts them in ``ExecutionStore``);
``tests/contract`` holds every store to them.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from spane_py.records import ArtifactRecord, EventRecord

__all__ = ["ArtifactStore", "EventStore"]


@runtime_checkable
class ArtifactStore(Protocol):
    """Artifacts, named blobs of an execution (test_artifacts.py): one per execution and
    name, putting a name again replaces it (record and bytes); they go with their
    execution. A name is text the store can keep (``spane_py.artifacts.name_problem``)."""

    async def put_artifact(self, record: ArtifactRecord, data: bytes) -> None:
        """Write ``data`` under ``record``'s execution and name (``record.size`` is
        ``len(data)``, else ``ValueError``); an unknown execution raises
        ``ExecutionNotFoundError``, writing nothing."""
        ...

    async def get_artifact(
        self, execution_id: str, name: str
    ) -> tuple[ArtifactRecord, bytes] | None: ...

    async def list_artifacts(self, execution_id: str) -> list[ArtifactRecord]:
        """The execution's artifacts (without their bytes), ordered by name."""
        ...


@runtime_checkable
class EventStore(Protocol):
    """The event history (test_events.py): the engine's events as streamed (their stable
    names, ``spane_py.observability.events``), written in batches by the engine
    (``observability/history.py``) and read by execution, type and time. An event of an
    execution the store does not hold is dropped; one about no execution is kept. The
    events of an execution go with it."""

    async def add_events(self, records: Sequence[EventRecord]) -> None:
        """Several events at once, in order (their ``fields`` are JSON objects)."""
        ...

    async def get_events(
        self,
        *,
        execution_id: str | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        """Events oldest first (by ``at``; those with the same ``at`` in the order added),
        at most ``limit``: only ``execution_id``'s when given, only of ``types`` when given
        (empty: none), ``at`` from ``since`` (inclusive) to ``until`` (exclusive)."""
        ...
