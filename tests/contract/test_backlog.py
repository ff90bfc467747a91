"""Contract: the two backlog rules each store writes on its own (Python in memory, SQL in
PostgreSQL): the stale-node rule of ``list_pending_nodes`` and the admission of queued
executions. Their one definition is ``BacklogStore``'s docstrings (spane_py/stores/base.py);
these tests hold both stores to it, edge by edge."""

from __future__ import annotations

import json

import pytest

from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionStore, PendingNode, evolve_execution

from .records import at, execution, node, normalized, ordered_ids


def waiting_for(child_id: str) -> dict[str, str]:
    """The fields of a sub-workflow node waiting for ``child_id`` to end."""
    return {"wait": json.dumps({"kind": "child", "child": child_id}), "wait_child": child_id}


async def pending_ids(store: ExecutionStore, older_than: int, limit: int = 500) -> list[str]:
    return [
        p.node_id for p in await store.list_pending_nodes(older_than=at(older_than), limit=limit)
    ]


class TestStaleNodes:
    async def test_queued_and_running_nodes_are_pending_since_the_later_of_their_times(
        self, contract_store: ExecutionStore
    ) -> None:
        await contract_store.create_execution(
            execution(),
            [
                node("queued", NodeStatus.QUEUED, queued_at=at(10)),
                node("at-the-bound", NodeStatus.QUEUED, queued_at=at(50)),  # strictly before
                node("never-queued", NodeStatus.QUEUED),
                node("started", NodeStatus.RUNNING, queued_at=at(5), started_at=at(20)),
                node("started-late", NodeStatus.RUNNING, queued_at=at(1), started_at=at(60)),
                node("no-queued-at", NodeStatus.RUNNING, started_at=at(1)),
                node("requeued", NodeStatus.QUEUED, queued_at=at(30), started_at=at(2)),
            ],
        )
        # Oldest first: queued since 10, started since 20, requeued since 30.
        assert await pending_ids(contract_store, 50) == ["queued", "started", "requeued"]
        assert await pending_ids(contract_store, 25) == ["queued", "started"]
        assert await pending_ids(contract_store, 10) == []
        assert await pending_ids(contract_store, 61) == [
            "queued",
            "started",
            "requeued",
            "at-the-bound",
            "started-late",
        ]

    async def test_nodes_in_other_statuses_are_never_pending(
        self, contract_store: ExecutionStore
    ) -> None:
        statuses = [NodeStatus.PENDING, NodeStatus.SUCCEEDED, NodeStatus.FAILED]
        statuses += [NodeStatus.SKIPPED, NodeStatus.CANCELLED]
        await contract_store.create_execution(
            execution(),
            [
                node(s.value, s, queued_at=at(1), started_at=at(2), wake_at=at(3), wait="{}")
                for s in statuses
            ],
        )
        assert await pending_ids(contract_store, 100) == []

    @pytest.mark.parametrize(
        "status",
        [s for s in ExecutionStatus if s is not ExecutionStatus.RUNNING],
    )
    async def test_only_running_executions_have_pending_nodes(
        self, contract_store: ExecutionStore, status: ExecutionStatus
    ) -> None:
        await contract_store.create_execution(
            execution(status=status),
            [
                node("queued", NodeStatus.QUEUED, queued_at=at(1)),
                node("timer", NodeStatus.WAITING, wake_at=at(1), wait='{"kind":"timer"}'),
            ],
        )
        assert await pending_ids(contract_store, 100) == []

    async def test_the_pending_node_names_its_job(self, contract_store: ExecutionStore) -> None:
        record = execution("orders", workflow_version=3, priority=7)
        await contract_store.create_execution(
            record, [node("a", NodeStatus.QUEUED, generation=2, queued_at=at(1))]
        )
        assert await contract_store.list_pending_nodes(older_than=at(2)) == [
            PendingNode(record.execution_id, "orders", 3, "a", 2, 7)
        ]

    async def test_ties_are_ordered_by_execution_then_node_and_limit_cuts_after_ordering(
        self, contract_store: ExecutionStore
    ) -> None:
        first, second, third = ordered_ids(3)
        # Created newest first, nodes written "b" before "a": the order is not the writes'.
        for eid, since in ((third, 5), (second, 5), (first, 7)):
            await contract_store.create_execution(
                execution(execution_id=eid),
                [
                    node("b", NodeStatus.QUEUED, queued_at=at(since)),
                    node("a", NodeStatus.QUEUED, queued_at=at(since)),
                ],
            )
        expected = [(second, "a"), (second, "b"), (third, "a"), (third, "b")]
        expected += [(first, "a"), (first, "b")]
        pending = await contract_store.list_pending_nodes(older_than=at(10))
        assert [(p.execution_id, p.node_id) for p in pending] == expected
        limited = await contract_store.list_pending_nodes(older_than=at(10), limit=3)
        assert [(p.execution_id, p.node_id) for p in limited] == expected[:3]
        assert await contract_store.list_pending_nodes(older_than=at(10), limit=0) == []
        with pytest.raises(ValueError, match="negative"):
            await contract_store.list_pending_nodes(older_than=at(10), limit=-1)

    async def test_a_waiting_node_is_pending_since_its_timer_or_its_childs_end(
        self, contract_store: ExecutionStore
    ) -> None:
        ended = execution("child", status=ExecutionStatus.COMPLETED, completed_at=at(20))
        no_end = execution("child", status=ExecutionStatus.FAILED, created_at=at(3))
        running = execution("child")
        for child in (ended, no_end, running):
            await contract_store.create_execution(child, [])
        await contract_store.create_execution(
            execution("parent"),
            [
                # Due both ways: once, since the earlier (the child ended at 20).
                node("both", NodeStatus.WAITING, wake_at=at(40), **waiting_for(ended.execution_id)),
                node("timer", NodeStatus.WAITING, wake_at=at(30), wait='{"kind":"timer"}'),
                # An ended child without completed_at: since it was created.
                node("no-end", NodeStatus.WAITING, **waiting_for(no_end.execution_id)),
                # A child still running: only the timer counts.
                node(
                    "running-child",
                    NodeStatus.WAITING,
                    wake_at=at(35),
                    **waiting_for(running.execution_id),
                ),
                node("event", NodeStatus.WAITING, wait='{"kind":"event"}'),
            ],
        )
        assert await pending_ids(contract_store, 25) == ["no-end", "both"]
        assert await pending_ids(contract_store, 100) == [
            "no-end",
            "both",
            "timer",
            "running-child",
        ]

    async def test_only_wait_child_counts_and_an_unknown_one_matches_nothing(
        self, contract_store: ExecutionStore
    ) -> None:
        """The store reads the typed ``wait_child``, never the node type's ``wait`` JSON."""
        ended = execution("child", status=ExecutionStatus.COMPLETED, completed_at=at(1))
        await contract_store.create_execution(ended, [])
        unknown = execution().execution_id  # never stored
        await contract_store.create_execution(
            execution("parent"),
            [
                node("unknown", NodeStatus.WAITING, **waiting_for(unknown)),
                # The JSON names the ended child, the typed field does not: not pending.
                node(
                    "json-only",
                    NodeStatus.WAITING,
                    wait=json.dumps({"kind": "child", "child": ended.execution_id}),
                ),
                node(
                    "field-only",
                    NodeStatus.WAITING,
                    wait='{"kind":"other"}',
                    wait_child=ended.execution_id,
                ),
                node("timer-too", NodeStatus.WAITING, wake_at=at(2), **waiting_for(unknown)),
                # Not waiting any more: the field is kept and ignored.
                node("done", NodeStatus.SUCCEEDED, **waiting_for(ended.execution_id)),
            ],
        )
        assert await pending_ids(contract_store, 100) == ["field-only", "timer-too"]


class TestAdmissionRule:
    async def test_only_this_workflows_running_and_paused_executions_take_slots(
        self, contract_store: ExecutionStore
    ) -> None:
        for status in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            await contract_store.create_execution(execution("other", status=status), [])
        for status in (ExecutionStatus.COMPLETED, ExecutionStatus.FAILED):
            await contract_store.create_execution(execution("limited", status=status), [])
        await contract_store.create_execution(
            execution("limited", status=ExecutionStatus.CANCELLED), []
        )
        queued = ordered_ids(2)
        for eid in queued:
            await contract_store.create_execution(
                execution("limited", execution_id=eid, status=ExecutionStatus.QUEUED), []
            )
        admitted = await contract_store.admit_queued("limited", 2, at(5))
        assert [r.execution_id for r in admitted] == queued

    @pytest.mark.parametrize("limit", [2, 1, 0, -1])
    async def test_a_limit_at_or_below_the_active_count_admits_none(
        self, contract_store: ExecutionStore, limit: int
    ) -> None:
        await contract_store.create_execution(execution("limited"), [])
        await contract_store.create_execution(
            execution("limited", status=ExecutionStatus.PAUSED), []
        )
        waiting = execution("limited", status=ExecutionStatus.QUEUED)
        await contract_store.create_execution(waiting, [])
        assert await contract_store.admit_queued("limited", limit, at(5)) == []
        stored = await contract_store.get_execution(waiting.execution_id)
        assert stored is not None
        assert stored.status is ExecutionStatus.QUEUED
        assert stored.started_at is None

    @pytest.mark.parametrize("limit", [2**63 - 1, 2**63, 2**70])
    async def test_a_limit_beyond_any_count_admits_every_queued_one(
        self, contract_store: ExecutionStore, limit: int
    ) -> None:
        await contract_store.create_execution(execution("limited"), [])
        queued = ordered_ids(3)
        for eid in queued:
            await contract_store.create_execution(
                execution("limited", execution_id=eid, status=ExecutionStatus.QUEUED), []
            )
        admitted = await contract_store.admit_queued("limited", limit, at(5))
        assert [r.execution_id for r in admitted] == queued

    async def test_admission_changes_only_the_status_and_started_at(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution(
            "limited",
            status=ExecutionStatus.QUEUED,
            initial_data='{"n": 1}',
            metadata={"tenant": "t1"},
            priority=3,
            idempotency_key="k",
        )
        nodes = [node("a", NodeStatus.QUEUED, queued_at=at(1)), node("b", NodeStatus.PENDING)]
        await contract_store.create_execution(record, nodes)
        started = evolve_execution(record, status=ExecutionStatus.RUNNING, started_at=at(5))
        [admitted] = await contract_store.admit_queued("limited", 1, at(5))
        assert normalized(admitted) == normalized(started)
        assert normalized(await contract_store.get_execution(record.execution_id)) == normalized(
            started
        )
        assert await contract_store.get_node_results(record.execution_id) == {
            n.node_id: n for n in nodes
        }
