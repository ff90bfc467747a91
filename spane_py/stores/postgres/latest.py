"""What one process knows of the executions it is transitioning.

Transitions of one execution made by this process queue on a per-execution lock instead of
racing each other in the database, and after each write the store keeps the execution's
new state and revision. The next transition of the same execution can then decide on that
state and write guarded by its revision, without reading first; a write made meanwhile by
another process fails the guard, and the store reads and decides again. So a diamond's
sibling completions in one worker cost one write each, not a storm of retries.

Each snapshot is kept with the moment (``time.monotonic()``) this process learned it, so a
caller can accept what was learned after an event of its own (``recent``).
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from spane_py.records import ExecutionSnapshot, Transition


class LatestSnapshots:
    def __init__(self, max_size: int = 10_000) -> None:
        self.max_size = max_size
        # execution id -> (snapshot, when this process learned it)
        self._snapshots: OrderedDict[str, tuple[ExecutionSnapshot, float]] = OrderedDict()
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    @asynccontextmanager
    async def lock(self, execution_id: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(execution_id, (None, 0))
        if lock is None:
            lock = asyncio.Lock()
        self._locks[execution_id] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[execution_id]
            if users <= 1:
                del self._locks[execution_id]
            else:
                self._locks[execution_id] = (lock, users - 1)

    def get(self, execution_id: str) -> ExecutionSnapshot | None:
        known = self._snapshots.get(execution_id)
        return known[0] if known is not None else None

    def learned_after(self, execution_id: str, since: float) -> ExecutionSnapshot | None:
        """The snapshot of ``execution_id`` if this process learned it after ``since``."""
        known = self._snapshots.get(execution_id)
        return known[0] if known is not None and known[1] > since else None

    def freshest(
        self, execution_id: str, offered: ExecutionSnapshot | None
    ) -> ExecutionSnapshot | None:
        """The newer of what this process last saw and what the caller offers."""
        known = self.get(execution_id)
        if offered is None or offered.revision is None:
            return known
        if offered.execution.execution_id != execution_id:
            return known
        if known is None or (known.revision or 0) < offered.revision:
            return offered
        return known

    def saw(self, snapshot: ExecutionSnapshot) -> None:
        eid = snapshot.execution.execution_id
        if snapshot.execution.status.is_terminal:
            self._snapshots.pop(eid, None)  # settled: no transition is expected any more
            return
        self._snapshots[eid] = (snapshot, time.monotonic())
        self._snapshots.move_to_end(eid)
        while len(self._snapshots) > self.max_size:
            self._snapshots.popitem(last=False)

    def wrote(self, snapshot: ExecutionSnapshot, result: Transition) -> None:
        """Record the state after ``result`` was written on top of ``snapshot``."""
        nodes = dict(snapshot.nodes)
        for node in result.nodes:
            nodes[node.node_id] = node
        execution = result.execution or snapshot.execution
        revision = (snapshot.revision or 0) + 1
        self.saw(ExecutionSnapshot(execution, nodes, revision))

    def forget(self, execution_id: str) -> None:
        self._snapshots.pop(execution_id, None)
