"""In-memory ``ExecutionStore`` for development and tests.

Atomicity comes from asyncio: ``transition`` reads, decides and writes without awaiting,
so no other coroutine can interleave. Memory is bounded like SPANE's (1000 executions,
1000 logs per execution, finished executions dropped after an hour) with one difference:
an execution that has not finished is never evicted, and definitions are never forgotten.

Like a database, the store shares no mutable object with its callers: metadata, log fields
and definitions are copied on the way in and on the way out, so mutating a record that was
written or read (or a snapshot handed to ``decide``) never changes what is stored. The
contract suite in ``tests/contract`` holds it to the same behaviour as the Postgres store.

One part per area of the contract (``spane_py.stores.base``), each a ``MemoryState``
(memory_state.py: the records, the bounds, the housekeeping and the copies):
memory_definitions.py, memory_executions.py (and ``transition``), memory_backlog.py (the
sweeper's pending nodes, admission), memory_dlq.py, memory_tokens.py, memory_triggers.py,
memory_traces.py (logs and spans), memory_artifacts.py, memory_events.py (the event
history), memory_retention.py (pruning expired executions).
"""

from __future__ import annotations

from dataclasses import dataclass

from spane_py.stores.memory_artifacts import MemoryArtifacts
from spane_py.stores.memory_backlog import MemoryBacklog
from spane_py.stores.memory_definitions import MemoryDefinitions
from spane_py.stores.memory_dlq import MemoryDeadLetters
from spane_py.stores.memory_events import MemoryEvents
from spane_py.stores.memory_executions import MemoryExecutions
from spane_py.stores.memory_retention import MemoryRetention
from spane_py.stores.memory_tokens import MemoryTokens
from spane_py.stores.memory_traces import MemoryTraces
from spane_py.stores.memory_triggers import MemoryTriggers

__all__ = ["InMemoryExecutionStore", "MemoryStoreStats"]


@dataclass(frozen=True, slots=True)
class MemoryStoreStats:
    executions: int
    running: int
    workflows: int
    logs: int
    evicted: int


class InMemoryExecutionStore(
    MemoryExecutions,
    MemoryBacklog,
    MemoryDefinitions,
    MemoryDeadLetters,
    MemoryTokens,
    MemoryTriggers,
    MemoryTraces,
    MemoryArtifacts,
    MemoryEvents,
    MemoryRetention,
):
    """Takes ``max_executions`` (1000), ``max_logs_per_execution`` (1000),
    ``max_spans_per_execution`` (500), ``finished_ttl_seconds`` (3600),
    ``max_artifact_bytes`` (256 MiB, all executions' artifacts together),
    ``max_events_per_execution`` (1000) and ``clock``
    (monotonic seconds, for tests of the finished-execution TTL): see ``MemoryState``."""

    shared = False  # one process's memory

    def describe(self) -> str:
        return "in-memory"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def stats(self) -> MemoryStoreStats:
        self.cleanup()
        return MemoryStoreStats(
            executions=len(self._executions),
            running=sum(1 for r in self._executions.values() if not r.status.is_terminal),
            workflows=len(self._workflows),
            logs=sum(len(v) for v in self._logs.values()),
            evicted=self._evicted,
        )
