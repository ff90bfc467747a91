"""Spans (the trace) are written with the transition that carries them, once each."""

from __future__ import annotations

from dataclasses import replace

from spane_py.definitions.graph import WorkflowGraph, compile_workflow
from spane_py.engine import decisions, planner
from spane_py.state import NodeStatus
from spane_py.stores.base import ExecutionSnapshot, ExecutionStore, SpanRecord, Transition

from .records import at, definition, execution, node


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


class TestWaitSpans:
    """The span of a wait (issue 12, item 11) goes with the transition that ends it, decided
    by the real planner: a resume, or a cancel of its execution."""

    @staticmethod
    async def waiting(store: ExecutionStore) -> tuple[str, WorkflowGraph]:
        graph = compile_workflow(definition("gate", "wait", "noop"))
        record = execution("gate")
        eid = record.execution_id
        await store.create_execution(record, planner.initial_nodes(graph, at(0)))
        start = await store.transition(eid, planner.plan_start("n0", 0, at(1)))
        assert isinstance(start.decision, decisions.Run)
        wait = '{"kind":"event","token":"tok"}'
        suspend = planner.plan_suspend(
            "n0", 0, attempt=1, started_at=at(1), wake_at=None, wait=wait
        )
        assert (await store.transition(eid, suspend)).decision == decisions.Suspended()
        assert await store.get_spans(eid) == []  # waiting: no span yet
        return eid, graph

    async def test_a_resume_writes_the_span_of_the_wait(
        self, contract_store: ExecutionStore
    ) -> None:
        eid, graph = await self.waiting(contract_store)
        outcome = planner.NodeOutcome(NodeStatus.SUCCEEDED, output='"yes"')
        resume = planner.plan_event(graph, "n0", 0, "tok", outcome, at(90))
        done = await contract_store.transition(eid, resume)
        assert done.enqueue == ("n1",)  # the node after the wait is claimed
        (span,) = await contract_store.get_spans(eid)
        assert span == SpanRecord(
            span_id=f"{eid}:n0:0:1",
            execution_id=eid,
            node_id="n0",
            name="n0",
            attempt=1,
            status="succeeded",
            started_at=at(1),
            ended_at=at(90),
            attributes={
                "type": "wait",
                "workflow_version": 1,
                "waited": True,
                "wait": "event",
                "resumed": True,
            },
        )
        assert done.spans == (span,)
        # The token is spent: a second resume is refused and writes nothing.
        again = await contract_store.transition(eid, resume)
        assert again.decision == decisions.Refused("not_waiting")
        assert await contract_store.get_spans(eid) == [span]

    async def test_a_cancel_writes_the_span_of_the_wait(
        self, contract_store: ExecutionStore
    ) -> None:
        eid, graph = await self.waiting(contract_store)
        done = await contract_store.transition(eid, planner.plan_cancel(at(30), "withdrawn", graph))
        assert done.decision == decisions.Stopped(("n0",))
        (span,) = await contract_store.get_spans(eid)
        assert (span.status, span.error, span.started_at, span.ended_at) == (
            "cancelled",
            "withdrawn",
            at(1),
            at(30),
        )
        assert span.attributes["waited"] is True
        assert span.attributes["resumed"] is False
        await contract_store.transition(eid, planner.plan_cancel(at(31), "again", graph))
        assert await contract_store.get_spans(eid) == [span]
