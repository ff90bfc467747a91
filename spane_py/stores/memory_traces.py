"""The in-memory store's logs and spans (``TraceStore``; a part of
``InMemoryExecutionStore``). Spans are written by ``transition`` (memory_executions.py);
both are bounded per execution (``max_logs_per_execution``, ``max_spans_per_execution``)."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence

from spane_py.records import LogRecord, SpanRecord
from spane_py.stores.memory_state import MemoryState, detach_log


class MemoryTraces(MemoryState):
    async def add_log(self, record: LogRecord) -> None:
        self.cleanup()
        if record.execution_id not in self._executions:
            return
        logs = self._logs.get(record.execution_id)
        if logs is None:
            logs = self._logs[record.execution_id] = deque(maxlen=self.max_logs_per_execution)
        logs.append(detach_log(record))

    async def add_logs(self, records: Sequence[LogRecord]) -> None:
        for record in records:
            await self.add_log(record)

    async def get_logs(self, execution_id: str, node_id: str | None = None) -> list[LogRecord]:
        self.cleanup()
        logs = self._logs.get(execution_id, ())
        return [detach_log(r) for r in logs if node_id is None or r.node_id == node_id]

    async def get_spans(self, execution_id: str) -> list[SpanRecord]:
        self.cleanup()
        return list(self._spans.get(execution_id, {}).values())
