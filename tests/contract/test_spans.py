"""Spans (the trace) are written with the transition that carries them, once each."""

from __future__ import annotations

from dataclasses import replace

from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionSnapshot, ExecutionStore, SpanRecord, Transition

from .records import at, execution, node


def span(eid: str, node_id: str, attempt: int, status: str, **fields: object) -> SpanRecord:
    return SpanRecord(
        span_id=f"{eid}:{node_id}:0:{attempt}",
        execution_id=eid,
        node_id=node_id,
        name=node_id,
        attempt=attempt,
        status=status,
        started_at=at(attempt),
        ended_at=at(attempt + 0.5),
        **fields,  # type: ignore[arg-type]
    )


class TestSpans:
    async def test_spans_come_with_their_transition(self, contract_store: ExecutionStore) -> None:
        record = execution()
        eid = record.execution_id
        await contract_store.create_execution(record, [node("a")])
        first = span(eid, "a", 1, "retrying", error="boom", traceback="Traceback ...\nboom")
        second = span(
            eid, "a", 2, "succeeded", worker_id="host:1", attributes={"type": "http", "v": 1}
        )

        def attempt(s: SpanRecord, status: NodeStatus):  # type: ignore[no-untyped-def]
            def decide(snap: ExecutionSnapshot) -> Transition:
                a = replace(snap.nodes["a"], status=status, attempts=s.attempt)
                return Transition(nodes=(a,), spans=(s,))

            return decide

        await contract_store.transition(eid, attempt(first, NodeStatus.QUEUED))
        await contract_store.transition(eid, attempt(second, NodeStatus.SUCCEEDED))
        assert await contract_store.get_spans(eid) == [first, second]

    async def test_a_span_written_twice_is_kept_once(self, contract_store: ExecutionStore) -> None:
        record = execution()
        eid = record.execution_id
        await contract_store.create_execution(record, [node("a")])
        s = span(eid, "a", 1, "succeeded")
        for _ in range(2):
            await contract_store.transition(eid, lambda snap: Transition(spans=(s,)))
        assert await contract_store.get_spans(eid) == [s]

    async def test_no_spans_for_unknown_or_other_executions(
        self, contract_store: ExecutionStore
    ) -> None:
        one, two = execution(), execution()
        for r in (one, two):
            await contract_store.create_execution(r, [node("a")])
        s = span(one.execution_id, "a", 1, "succeeded")
        await contract_store.transition(one.execution_id, lambda snap: Transition(spans=(s,)))
        assert await contract_store.get_spans(two.execution_id) == []
        assert await contract_store.get_spans("no-such-execution") == []
