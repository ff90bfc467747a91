"""Contract: the event history (``EventStore``)."""

from __future__ import annotations

import pytest

from spane_py.records import EventRecord
from spane_py.stores.base import ExecutionStore

from .records import at, execution


def event(
    type_: str, seconds: float, execution_id: str | None = None, **fields: object
) -> EventRecord:
    return EventRecord(
        type=type_,
        at=at(seconds),
        execution_id=execution_id,
        workflow_id="wf" if execution_id else None,
        node_id=str(fields.pop("node_id")) if "node_id" in fields else None,
        fields=fields,
    )


class TestEvents:
    async def test_events_come_back_oldest_first(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        eid = record.execution_id
        written = [
            event("execution.started", 0, eid),
            event("node.started", 1, eid, node_id="a", attempt=1),
            event("node.completed", 2.000001, eid, node_id="a", attempt=1),
            event("execution.completed", 3, eid),
        ]
        # Added out of time order (two processes' batches): read back by time.
        await contract_store.add_events(written[2:])
        await contract_store.add_events(written[:2])
        assert await contract_store.get_events(execution_id=eid) == written
        assert await contract_store.get_events() == written
        assert await contract_store.get_events(limit=2) == written[:2]
        assert await contract_store.get_events(limit=0) == []

    async def test_same_time_in_the_order_added(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        same = [event(f"node.{n}", 1, record.execution_id, node_id=n) for n in "cab"]
        await contract_store.add_events(same)
        assert await contract_store.get_events() == same

    async def test_filters_by_execution_type_and_time(self, contract_store: ExecutionStore) -> None:
        one, two = execution(), execution()
        for record in (one, two):
            await contract_store.create_execution(record, [])
        a, b = one.execution_id, two.execution_id
        events = [
            event("execution.started", 0, a),
            event("execution.started", 1, b),
            event("node.failed", 2, a, node_id="x", error="boom"),
            event("execution.failed", 3, a, error="node 'x' failed"),
            event("execution.completed", 4, b),
            event("breaker.opened", 5, None, node_type="pay"),
        ]
        await contract_store.add_events(events)
        get = contract_store.get_events
        assert await get(execution_id=b) == [events[1], events[4]]
        assert await get(types=["execution.started"]) == [events[0], events[1]]
        assert await get(types=["execution.failed", "execution.completed"]) == events[3:5]
        assert await get(types=[]) == []
        assert await get(execution_id=a, types=["node.failed"]) == [events[2]]
        assert await get(since=at(2), until=at(4)) == events[2:4]  # since in, until out
        assert await get(since=at(4)) == events[4:]
        assert await get(until=at(1)) == events[:1]
        assert await get(execution_id=a, since=at(1), until=at(3)) == [events[2]]
        assert await get(types=["breaker.opened"]) == [events[5]]  # about no execution
        assert await get(execution_id="no-such-execution") == []
        with pytest.raises(ValueError, match="negative"):
            await get(limit=-1)

    async def test_fields_round_trip(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        written = event(
            "node.retrying",
            1,
            record.execution_id,
            node_id="n",
            attempt=2,
            delay_ms=1500,
            error="h\u00e9llo \U0001f600",
            nested={"list": [0, False, "", None]},
        )
        await contract_store.add_events([written])
        [got] = await contract_store.get_events()
        assert got == written
        assert got.at.tzinfo is not None
        got_fields = dict(got.fields)
        got_fields["nested"]["list"].append("mutated")  # a copy: the store is untouched
        assert await contract_store.get_events() == [written]

    async def test_events_of_an_unknown_execution_are_dropped(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        ghost = execution()
        await contract_store.add_events(
            [
                event("node.started", 1, ghost.execution_id),
                event("node.started", 2, record.execution_id),
                event("node.started", 3, "not-a-uuid"),
            ]
        )
        assert [e.at for e in await contract_store.get_events()] == [at(2)]
        await contract_store.add_events([])
