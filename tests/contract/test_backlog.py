"""Contract: the two backlog rules each store writes on its own (Python in memory, SQL in
PostgreSQL): the stale-node rule of ``list_pending_nodes`` and the admission of queued
executions. Their one definition is ``BacklogStore``'s docstrings (spane_py/stores/base.py);
these tests hold both stores to it, edge by edge."""

from __future__ import annotations

import asyncio
import json
from collections import Counter

import pytest

from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import (
    ExecutionSnapshot,
    ExecutionStore,
    PendingNode,
    Transition,
    evolve_execution,
)

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
            concurrency_key='"c-1"',
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


async def queue_up(
    store: ExecutionStore, *keys: str | None, workflow: str = "limited"
) -> list[str]:
    """Queued executions of ``workflow`` with these concurrency keys, oldest first; their ids."""
    ids = ordered_ids(len(keys))
    for eid, key in zip(ids, keys, strict=True):
        await store.create_execution(
            execution(
                workflow, execution_id=eid, status=ExecutionStatus.QUEUED, concurrency_key=key
            ),
            [node("a")],
        )
    return ids


async def admitted_ids(
    store: ExecutionStore, limit: int, key_limit: int | None, *, workflow: str = "limited"
) -> list[str]:
    found = await store.admit_queued(workflow, limit, at(5), key_limit=key_limit)
    return [r.execution_id for r in found]


async def end(store: ExecutionStore, execution_id: str, status: ExecutionStatus) -> None:
    def decide(snap: ExecutionSnapshot) -> Transition:
        return Transition(execution=evolve_execution(snap.execution, status=status))

    await store.transition(execution_id, decide)


BIG = 2**40


class TestKeyedAdmissionRule:
    """``admit_queued(..., key_limit=)``: the limit per concurrency key."""

    async def test_fifo_per_key_and_other_keys_proceed(
        self, contract_store: ExecutionStore
    ) -> None:
        a1, b1, a2, a3, c1 = await queue_up(contract_store, '"A"', '"B"', '"A"', '"A"', '"C"')
        assert await admitted_ids(contract_store, BIG, 1) == [a1, b1, c1]
        assert await admitted_ids(contract_store, BIG, 1) == []  # every key is full
        await end(contract_store, b1, ExecutionStatus.COMPLETED)  # B's slot: nobody waits
        assert await admitted_ids(contract_store, BIG, 1) == []
        await end(contract_store, a1, ExecutionStatus.FAILED)
        assert await admitted_ids(contract_store, BIG, 1) == [a2]  # oldest of A first
        await end(contract_store, a2, ExecutionStatus.CANCELLED)
        assert await admitted_ids(contract_store, BIG, 1) == [a3]

    async def test_a_key_limit_above_one_admits_that_many_of_a_key(
        self, contract_store: ExecutionStore
    ) -> None:
        ids = await queue_up(contract_store, '"A"', '"A"', '"A"', '"B"', '"A"')
        assert await admitted_ids(contract_store, BIG, 2) == [ids[0], ids[1], ids[3]]
        await end(contract_store, ids[0], ExecutionStatus.COMPLETED)
        assert await admitted_ids(contract_store, BIG, 2) == [ids[2]]

    async def test_running_and_paused_executions_of_the_key_in_this_workflow_take_its_slots(
        self, contract_store: ExecutionStore
    ) -> None:
        # Held: A by a paused execution, B by a running one. Not held by other statuses,
        # other workflows, or executions without a key.
        holders = [
            ("limited", ExecutionStatus.PAUSED, '"A"'),
            ("limited", ExecutionStatus.RUNNING, '"B"'),
            ("limited", ExecutionStatus.COMPLETED, '"C"'),
            ("limited", ExecutionStatus.FAILED, '"C"'),
            ("limited", ExecutionStatus.CANCELLED, '"C"'),
            ("other", ExecutionStatus.RUNNING, '"D"'),
            ("limited", ExecutionStatus.RUNNING, None),
        ]
        for workflow, status, key in holders:
            await contract_store.create_execution(
                execution(workflow, status=status, concurrency_key=key), []
            )
        ids = await queue_up(contract_store, '"A"', '"B"', '"C"', '"D"')
        assert await admitted_ids(contract_store, BIG, 1) == [ids[2], ids[3]]

    async def test_keys_are_compared_as_text_exactly(self, contract_store: ExecutionStore) -> None:
        ids = await queue_up(contract_store, "7", '"7"', "7", '"7"', '"a"', '"A"')
        assert await admitted_ids(contract_store, BIG, 1) == [ids[0], ids[1], ids[4], ids[5]]

    async def test_combined_with_max_concurrency_both_must_have_room(
        self, contract_store: ExecutionStore
    ) -> None:
        a1, a2, b1, c1 = await queue_up(contract_store, '"A"', '"A"', '"B"', '"C"')
        # Two slots in all: A's second waits for its key, C for the workflow.
        assert await admitted_ids(contract_store, 2, 1) == [a1, b1]
        await end(contract_store, b1, ExecutionStatus.COMPLETED)
        # A slot of the workflow is free, A's is not: the oldest that fits is C.
        assert await admitted_ids(contract_store, 2, 1) == [c1]
        await end(contract_store, c1, ExecutionStatus.COMPLETED)
        assert await admitted_ids(contract_store, 2, 1) == []  # A2 still waits for A1
        await end(contract_store, a1, ExecutionStatus.COMPLETED)
        assert await admitted_ids(contract_store, 2, 1) == [a2]

    async def test_a_full_workflow_admits_none_whatever_the_keys(
        self, contract_store: ExecutionStore
    ) -> None:
        await contract_store.create_execution(execution("limited", concurrency_key='"X"'), [])
        await queue_up(contract_store, '"A"', '"B"')
        assert await admitted_ids(contract_store, 1, 5) == []

    async def test_executions_without_a_key_count_only_for_the_workflow(
        self, contract_store: ExecutionStore
    ) -> None:
        # Created before the workflow had a key limit: only max_concurrency applies.
        ids = await queue_up(contract_store, None, '"A"', None, '"A"', None)
        assert await admitted_ids(contract_store, 4, 1) == [ids[0], ids[1], ids[2], ids[4]]

    async def test_without_a_key_limit_keys_are_not_looked_at(
        self, contract_store: ExecutionStore
    ) -> None:
        await contract_store.create_execution(execution("limited", concurrency_key='"A"'), [])
        ids = await queue_up(contract_store, '"A"', '"A"', '"B"')
        assert await admitted_ids(contract_store, 3, None) == ids[:2]

    @pytest.mark.parametrize(
        ("key_limit", "admitted"), [(0, [2]), (-1, [2]), (2**63 - 1, [0, 1, 2]), (2**70, [0, 1, 2])]
    )
    async def test_key_limits_at_and_beyond_the_edges(
        self, contract_store: ExecutionStore, key_limit: int, admitted: list[int]
    ) -> None:
        ids = await queue_up(contract_store, '"A"', '"A"', None)
        assert await admitted_ids(contract_store, BIG, key_limit) == [ids[i] for i in admitted]

    async def test_admission_under_a_key_limit_changes_only_the_status_and_started_at(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution(
            "limited",
            status=ExecutionStatus.QUEUED,
            metadata={"tenant": "t1"},
            concurrency_key='{"id":7,"region":"eu"}',
        )
        await contract_store.create_execution(record, [node("a", queued_at=at(1))])
        started = evolve_execution(record, status=ExecutionStatus.RUNNING, started_at=at(5))
        [admitted] = await contract_store.admit_queued("limited", BIG, at(5), key_limit=1)
        assert normalized(admitted) == normalized(started)
        assert normalized(await contract_store.get_execution(record.execution_id)) == normalized(
            started
        )

    async def test_keys_of_executions_created_together_are_kept(
        self, contract_store: ExecutionStore
    ) -> None:
        records = [
            execution("limited", status=ExecutionStatus.QUEUED, concurrency_key=key)
            for key in ('"A"', None, "[1,2]")
        ]
        await contract_store.create_executions([(r, [node("a")]) for r in records])
        for record in records:
            stored = await contract_store.get_execution(record.execution_id)
            assert stored is not None
            assert stored.concurrency_key == record.concurrency_key

    async def test_concurrent_admissions_never_exceed_the_limit_of_a_key(
        self, contract_store: ExecutionStore
    ) -> None:
        keys = ['"A"', '"B"', '"C"'] * 5
        ids = await queue_up(contract_store, *keys)
        key_of = dict(zip(ids, keys, strict=True))
        results = await asyncio.gather(
            *(contract_store.admit_queued("limited", BIG, at(1), key_limit=2) for _ in range(6))
        )
        admitted = [r.execution_id for batch in results for r in batch]
        assert Counter(key_of[i] for i in admitted) == {'"A"': 2, '"B"': 2, '"C"': 2}
        # ... and with max_concurrency too: 7 in all, at most 2 of a key.
        more = await queue_up(contract_store, '"D"', '"D"', '"D"', '"E"')
        key_of.update(zip(more, ['"D"', '"D"', '"D"', '"E"'], strict=True))
        results = await asyncio.gather(
            *(contract_store.admit_queued("limited", 7, at(1), key_limit=2) for _ in range(6))
        )
        assert [r.execution_id for batch in results for r in batch] == [more[0]]
        running = await contract_store.list_executions(
            workflow_id="limited", status=ExecutionStatus.RUNNING, limit=100
        )
        assert len(running.items) == 7
        assert max(Counter(key_of[r.execution_id] for r in running.items).values()) == 2
