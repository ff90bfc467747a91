"""The in-memory store's event history (``EventStore``; a part of
``InMemoryExecutionStore``): the newest ``max_events_per_execution`` (1000) events of each
execution, and as many of those about no execution; an execution's go with it."""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from datetime import datetime
from itertools import chain

from spane_py.records import EventRecord
from spane_py.stores.memory_state import MemoryState, check_window, copy_mapping


class MemoryEvents(MemoryState):
    async def add_events(self, records: Sequence[EventRecord]) -> None:
        self.cleanup()
        for record in records:
            eid = record.execution_id
            if eid is not None and eid not in self._executions:
                continue
            kept = self._events.get(eid)
            if kept is None:
                kept = self._events[eid] = deque(maxlen=self.max_events_per_execution)
            self._event_seq += 1
            kept.append((self._event_seq, _detach(record)))

    async def get_events(
        self,
        *,
        execution_id: str | None = None,
        types: Sequence[str] | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 100,
    ) -> list[EventRecord]:
        check_window(limit=limit)
        self.cleanup()
        everything = execution_id is None
        kept = self._events.values() if everything else [self._events.get(execution_id, ())]
        wanted = None if types is None else frozenset(types)
        found = sorted(
            (
                (r.at, seq, r)
                for seq, r in chain.from_iterable(kept)
                if (wanted is None or r.type in wanted)
                and (since is None or r.at >= since)
                and (until is None or r.at < until)
            ),
            key=lambda item: (item[0], item[1]),
        )
        return [_detach(r) for _, _, r in found[:limit]]


_SCALARS = (str, int, float, type(None))


def _detach(record: EventRecord) -> EventRecord:
    """A copy that shares no mutable object with the caller: fields of plain values (the
    usual: attempt, error) are copied as a dict, others deeply."""
    fields = record.fields
    if all(isinstance(v, _SCALARS) for v in fields.values()):
        copied = dict(fields)
    else:
        copied = copy_mapping(fields)
    return EventRecord(
        record.type, record.at, record.execution_id, record.workflow_id, record.node_id, copied
    )
