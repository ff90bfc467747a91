"""``WorkflowCache``: compiled workflow versions, LRU + TTL, in front of the store.

Entries are keyed by (workflow id, version). A version never changes once saved, so the TTL
only bounds memory; a miss reloads the version from the store (lazy definitions: a worker
that never registered a workflow can still run it).
"""

from __future__ import annotations

import time
from collections import OrderedDict
from dataclasses import dataclass

from spane_py.definitions.graph import WorkflowGraph, compile_workflow
from spane_py.errors import WorkflowNotFoundError
from spane_py.stores.base import ExecutionStore


@dataclass(frozen=True, slots=True)
class CacheStats:
    size: int
    max_size: int
    hits: int
    misses: int
    evictions: int

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class WorkflowCache:
    def __init__(
        self,
        store: ExecutionStore,
        *,
        max_size: int = 500,
        ttl_seconds: float = 3600.0,
        latest_ttl_seconds: float = 1.0,
    ) -> None:
        if max_size < 1:
            raise ValueError("cache max_size must be at least 1")
        self.store = store
        self.max_size = max_size
        self.ttl_seconds = ttl_seconds
        self.latest_ttl_seconds = latest_ttl_seconds
        self._latest: dict[str, tuple[int | None, float]] = {}
        self._entries: OrderedDict[tuple[str, int], tuple[WorkflowGraph, float]] = OrderedDict()
        self._hits = 0
        self._misses = 0
        self._evictions = 0

    def put(self, version: int, graph: WorkflowGraph) -> None:
        key = (graph.workflow_id, version)
        self._entries[key] = (graph, time.monotonic() + self.ttl_seconds)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_size:
            self._entries.popitem(last=False)
            self._evictions += 1

    async def get(self, workflow_id: str, version: int) -> WorkflowGraph:
        key = (workflow_id, version)
        entry = self._entries.get(key)
        if entry is not None:
            graph, expires = entry
            if expires > time.monotonic():
                self._hits += 1
                self._entries.move_to_end(key)
                return graph
            del self._entries[key]
            self._evictions += 1
        self._misses += 1
        record = await self.store.get_workflow(workflow_id, version)
        if record is None:
            raise WorkflowNotFoundError(
                f"workflow {workflow_id!r} version {version} is not in the store",
                workflow_id=workflow_id,
            )
        graph = compile_workflow(record.definition)
        self.put(version, graph)
        return graph

    async def latest_version(self, workflow_id: str) -> int | None:
        """The newest active version (None: not registered or deactivated). Remembered for
        ``latest_ttl_seconds``: a version registered by another process is seen that
        quickly; one registered through this cache (``set_latest``) at once."""
        now = time.monotonic()
        known = self._latest.get(workflow_id)
        if known is not None and known[1] > now:
            return known[0]
        version = await self.store.get_workflow_version(workflow_id)
        self._latest[workflow_id] = (version, now + self.latest_ttl_seconds)
        if len(self._latest) > self.max_size * 4:
            self._latest = {k: v for k, v in self._latest.items() if v[1] > now}
        return version

    def set_latest(self, workflow_id: str, version: int | None) -> None:
        self._latest[workflow_id] = (version, time.monotonic() + self.latest_ttl_seconds)

    def invalidate(self, workflow_id: str | None = None) -> None:
        if workflow_id is None:
            self._entries.clear()
            self._latest.clear()
            return
        self._latest.pop(workflow_id, None)
        for key in [k for k in self._entries if k[0] == workflow_id]:
            del self._entries[key]

    def stats(self) -> CacheStats:
        return CacheStats(
            size=len(self._entries),
            max_size=self.max_size,
            hits=self._hits,
            misses=self._misses,
            evictions=self._evictions,
        )
