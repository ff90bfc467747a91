"""Contract: waiting nodes, admission of queued executions, dead-letter items, resume tokens."""

from __future__ import annotations

import asyncio
import json

import pytest

from spane_py.errors import StatePersistenceError
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import (
    DlqRecord,
    ExecutionSnapshot,
    ExecutionStore,
    ResumeTokenRecord,
    Transition,
    evolve_execution,
)

from .records import T0, at, execution, node, ordered_ids


def dlq_item(execution_id: str, node_id: str = "a", **fields: object) -> DlqRecord:
    return DlqRecord(
        execution_id=execution_id,
        workflow_id=str(fields.pop("workflow_id", "wf")),
        node_id=node_id,
        job={"e": execution_id, "w": "wf", "v": 1, "n": node_id, "g": 0},
        error=str(fields.pop("error", "boom")),
        attempts=3,
        failed_at=fields.pop("failed_at", T0),  # type: ignore[arg-type]
        traceback="Traceback (most recent call last): ...",
    )


def token(execution_id: str, value: str = "tok-1", **fields: object) -> ResumeTokenRecord:
    return ResumeTokenRecord(
        token=value,
        execution_id=execution_id,
        node_id=str(fields.pop("node_id", "approve")),
        generation=0,
        created_at=T0,
        expires_at=fields.pop("expires_at", at(3600)),  # type: ignore[arg-type]
    )


class TestWaitingNodes:
    async def test_wake_at_and_wait_round_trip(self, contract_store: ExecutionStore) -> None:
        record = execution()
        waiting = node("sleep", NodeStatus.WAITING, wake_at=at(30), wait='{"kind":"timer","n":0}')
        await contract_store.create_execution(record, [waiting])
        got = (await contract_store.get_node_results(record.execution_id))["sleep"]
        assert got.status is NodeStatus.WAITING
        assert got.wake_at == at(30)
        assert json.loads(got.wait or "") == {"kind": "timer", "n": 0}

        def clear(snap: ExecutionSnapshot) -> Transition:
            rec = snap.nodes["sleep"]
            return Transition(nodes=(rec.evolve(status=NodeStatus.SUCCEEDED, wake_at=None),))

        await contract_store.transition(record.execution_id, clear)
        got = (await contract_store.get_node_results(record.execution_id))["sleep"]
        assert got.wake_at is None
        assert got.status is NodeStatus.SUCCEEDED
        assert got.wait is not None  # kept: what the node waited for stays readable

    async def test_wait_child_round_trips_through_create_transition_and_snapshot(
        self, contract_store: ExecutionStore
    ) -> None:
        record, child = execution(), execution("child")
        await contract_store.create_execution(
            record, [node("call", NodeStatus.WAITING, wait_child=child.execution_id)]
        )
        got = (await contract_store.get_node_results(record.execution_id))["call"]
        assert got.wait_child == child.execution_id

        def rewait(snap: ExecutionSnapshot) -> Transition:
            other = snap.nodes["call"].evolve(wait_child=record.execution_id)
            return Transition(nodes=(other, node("next", NodeStatus.WAITING, wait_child=None)))

        await contract_store.transition(record.execution_id, rewait)
        snap = await contract_store.get_snapshot(record.execution_id)
        assert snap is not None
        assert snap.nodes["call"].wait_child == record.execution_id
        assert snap.nodes["next"].wait_child is None

    async def test_sweeper_sees_waits_that_are_due(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(
            record,
            [
                node("due", NodeStatus.WAITING, wake_at=at(10), wait='{"kind":"timer"}'),
                node("later", NodeStatus.WAITING, wake_at=at(100), wait='{"kind":"timer"}'),
                node("event", NodeStatus.WAITING, wait='{"kind":"event"}'),
            ],
        )
        pending = await contract_store.list_pending_nodes(older_than=at(50))
        assert [(p.execution_id, p.node_id) for p in pending] == [(record.execution_id, "due")]

    async def test_sweeper_sees_a_waiting_parent_of_a_finished_child(
        self, contract_store: ExecutionStore
    ) -> None:
        parent = execution("parent")
        child = execution(
            "child",
            parent_execution_id=parent.execution_id,
            parent_node_id="call",
            depth=1,
        )
        other = execution("child")  # finished, but not the child the node waits for
        wait = json.dumps({"kind": "child", "child": child.execution_id})
        await contract_store.create_execution(
            parent,
            [node("call", NodeStatus.WAITING, wait=wait, wait_child=child.execution_id)],
        )
        await contract_store.create_execution(child, [])
        await contract_store.create_execution(other, [])
        assert await contract_store.list_pending_nodes(older_than=at(100)) == []

        def finish(snap: ExecutionSnapshot) -> Transition:
            return Transition(
                execution=evolve_execution(
                    snap.execution, status=ExecutionStatus.COMPLETED, completed_at=at(5)
                )
            )

        await contract_store.transition(other.execution_id, finish)
        assert await contract_store.list_pending_nodes(older_than=at(100)) == []
        await contract_store.transition(child.execution_id, finish)
        assert await contract_store.list_pending_nodes(older_than=at(1)) == []
        pending = await contract_store.list_pending_nodes(older_than=at(100))
        assert [(p.execution_id, p.node_id, p.workflow_id) for p in pending] == [
            (parent.execution_id, "call", "parent")
        ]

    async def test_waiting_nodes_of_paused_executions_are_not_swept(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution(status=ExecutionStatus.PAUSED)
        await contract_store.create_execution(
            record, [node("due", NodeStatus.WAITING, wake_at=at(1), wait="{}")]
        )
        assert await contract_store.list_pending_nodes(older_than=at(50)) == []


class TestAdmission:
    async def test_admits_oldest_queued_up_to_the_limit(
        self, contract_store: ExecutionStore
    ) -> None:
        ids = ordered_ids(5)
        running = execution("limited", execution_id=ids[0])
        queued = [
            execution("limited", execution_id=i, status=ExecutionStatus.QUEUED) for i in ids[1:]
        ]
        elsewhere = execution("other", status=ExecutionStatus.QUEUED)
        for record in [running, *queued, elsewhere]:
            await contract_store.create_execution(record, [node("a")])
        assert await contract_store.list_queued_workflows() == ["limited", "other"]

        admitted = await contract_store.admit_queued("limited", 3, at(9))
        assert [r.execution_id for r in admitted] == ids[1:3]
        assert all(r.status is ExecutionStatus.RUNNING and r.started_at == at(9) for r in admitted)
        stored = await contract_store.get_execution(ids[1])
        assert stored is not None
        assert stored.status is ExecutionStatus.RUNNING
        assert await contract_store.admit_queued("limited", 3, at(9)) == []

        def pause(snap: ExecutionSnapshot) -> Transition:  # a paused one still holds its slot
            return Transition(
                execution=evolve_execution(snap.execution, status=ExecutionStatus.PAUSED)
            )

        await contract_store.transition(ids[0], pause)
        assert await contract_store.admit_queued("limited", 3, at(9)) == []

        def finish(snap: ExecutionSnapshot) -> Transition:
            return Transition(
                execution=evolve_execution(snap.execution, status=ExecutionStatus.COMPLETED)
            )

        await contract_store.transition(ids[0], finish)
        admitted = await contract_store.admit_queued("limited", 3, at(10))
        assert [r.execution_id for r in admitted] == [ids[3]]
        assert await contract_store.list_queued_workflows() == ["limited", "other"]

    async def test_concurrent_admissions_never_exceed_the_limit(
        self, contract_store: ExecutionStore
    ) -> None:
        for i in ordered_ids(10):
            await contract_store.create_execution(
                execution("limited", execution_id=i, status=ExecutionStatus.QUEUED), [node("a")]
            )
        results = await asyncio.gather(
            *(contract_store.admit_queued("limited", 4, at(1)) for _ in range(6))
        )
        assert sum(len(r) for r in results) == 4
        assert (
            await contract_store.get_execution_count(
                workflow_id="limited", status=ExecutionStatus.RUNNING
            )
            == 4
        )


class TestDeadLetters:
    async def test_items_are_written_with_a_transition(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a")])
        item = dlq_item(record.execution_id)

        def fail(snap: ExecutionSnapshot) -> Transition:
            return Transition(
                nodes=(snap.nodes["a"].evolve(status=NodeStatus.FAILED, error="boom"),),
                dlq=(item,),
            )

        await contract_store.transition(record.execution_id, fail)
        items = await contract_store.list_dlq_items()
        assert len(items) == 1
        got = items[0]
        assert got.dlq_id is not None
        assert (got.execution_id, got.node_id, got.error, got.attempts) == (
            record.execution_id,
            "a",
            "boom",
            3,
        )
        assert dict(got.job) == dict(item.job)
        assert got.traceback == item.traceback
        assert got.failed_at == T0
        assert got.retried_at is None
        assert await contract_store.get_dlq_item(got.dlq_id) == got
        assert await contract_store.get_dlq_item(got.dlq_id + 1000) is None
        assert await contract_store.get_dlq_count() == 1

    async def test_a_failed_decide_writes_no_item(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a")])

        def broken(snap: ExecutionSnapshot) -> Transition:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError):
            await contract_store.transition(record.execution_id, broken)
        assert await contract_store.list_dlq_items() == []

    async def test_retried_purged_and_listed_newest_first(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("a"), node("b"), node("c")])
        for i, name in enumerate("abc"):
            item = dlq_item(record.execution_id, name, failed_at=at(i))

            def fail(snap: ExecutionSnapshot, item: DlqRecord = item) -> Transition:
                return Transition(dlq=(item,))

            await contract_store.transition(record.execution_id, fail)
        items = await contract_store.list_dlq_items()
        assert [i.node_id for i in items] == ["c", "b", "a"]
        assert [i.node_id for i in await contract_store.list_dlq_items(limit=1, offset=1)] == ["b"]
        first = items[0].dlq_id
        assert first is not None
        assert await contract_store.mark_dlq_retried(first, at(10)) is True
        assert await contract_store.mark_dlq_retried(first, at(11)) is False
        assert [i.node_id for i in await contract_store.list_dlq_items()] == ["b", "a"]
        everything = await contract_store.list_dlq_items(include_retried=True)
        assert everything[0].retried_at == at(10)
        assert await contract_store.get_dlq_count(include_retried=True) == 3
        assert await contract_store.purge_dlq(older_than=at(1)) == 1  # "a"
        assert await contract_store.get_dlq_count(include_retried=True) == 2
        assert await contract_store.purge_dlq() == 2
        assert await contract_store.list_dlq_items(include_retried=True) == []
        with pytest.raises(ValueError, match="negative"):
            await contract_store.list_dlq_items(limit=-1)


class TestResumeTokens:
    async def test_round_trip_and_states(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [node("approve", NodeStatus.WAITING)])
        tok = token(record.execution_id)
        await contract_store.save_token(tok)
        assert await contract_store.get_token("tok-1") == tok
        assert await contract_store.get_token("nope") is None
        with pytest.raises(StatePersistenceError):
            await contract_store.save_token(tok)

        listed = await contract_store.list_tokens(execution_id=record.execution_id, now=at(1))
        assert listed == [tok]
        assert await contract_store.list_tokens(now=at(7200)) == []  # expired
        assert len(await contract_store.list_tokens(active_only=False, now=at(7200))) == 1

        assert await contract_store.set_token_used("tok-1", at(2)) is True
        assert await contract_store.set_token_used("tok-1", at(3)) is False
        assert await contract_store.revoke_token("tok-1", at(3)) is False
        used = await contract_store.get_token("tok-1")
        assert used is not None
        assert used.used_at == at(2)
        assert used.state(at(2)) == "used"

    async def test_revoke(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        await contract_store.save_token(token(record.execution_id, "t2", expires_at=None))
        assert await contract_store.revoke_token("t2", at(1)) is True
        assert await contract_store.set_token_used("t2", at(2)) is False
        got = await contract_store.get_token("t2")
        assert got is not None
        assert got.state(at(5)) == "revoked"
        assert got.expires_at is None
        assert await contract_store.list_tokens(now=at(5)) == []
        assert await contract_store.revoke_token("missing", at(1)) is False
