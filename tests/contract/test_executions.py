"""Contract: executions, node records, metadata, listing and families."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from spane_py.errors import ExecutionNotFoundError, StatePersistenceError
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionRecord, ExecutionStore, Transition

from .records import T0, Carried, at, canonical_json, execution, node, normalized, ordered_ids

# Falsy and tricky JSON outputs must come back as the same JSON values (SPANE returned null
# for 0, false and "" from Postgres). ``None`` (no output) differs from "null". A store keeps
# values, not formatting: jsonb normalises whitespace and the order of object keys.
TRICKY_OUTPUTS = {
    "zero": "0",
    "false": "false",
    "empty-string": '""',
    "json-null": "null",
    "empty-list": "[]",
    "empty-object": "{}",
    "no-output": None,
    "key-order": '{"z":1,"a":{"y":[3,2,1],"b":null}}',
    "unicode": '"h\u00e9llo \U0001f600"',
    "big-int": "12345678901234567890",
    "float": "0.1",
}


class TestCreateAndGet:
    async def test_execution_round_trips_every_field(self, contract_store: ExecutionStore) -> None:
        parent = execution("parent-wf", created_at=at(-60))
        await contract_store.create_execution(parent, [])
        record = execution(
            "orders",
            workflow_version=7,
            status=ExecutionStatus.RUNNING,
            created_at=T0,
            initial_data='{"z":1,"a":[true,null,"\u00e9"],"n":0}',
            metadata={"replayedFrom": "x", "nested": {"list": [1, 2.5, None, False]}, "e": ""},
            parent_execution_id=parent.execution_id,
            parent_node_id="call-child",
            depth=1,
            priority=7,
            idempotency_key="order-42",
            started_at=at(0.000001),
        )
        created = await contract_store.create_execution(record, [node("a")])
        assert created.created is True
        assert created.record == record
        assert normalized(await contract_store.get_execution(record.execution_id)) == normalized(
            record
        )

        finished = execution(
            status=ExecutionStatus.FAILED,
            created_at=at(1),
            initial_data="0",
            started_at=at(2),
            completed_at=at(3.999999),
            error="node 'a' failed: boom",
        )
        await contract_store.create_execution(finished, [])
        assert await contract_store.get_execution(finished.execution_id) == finished

    async def test_defaults_round_trip(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        got = await contract_store.get_execution(record.execution_id)
        assert got == record
        assert got is not None
        assert (got.initial_data, dict(got.metadata), got.priority, got.depth) == (
            "null",
            {},
            None,
            0,
        )

    async def test_node_records_round_trip_every_field(
        self, contract_store: ExecutionStore
    ) -> None:
        full = node(
            "full",
            NodeStatus.SUCCEEDED,
            generation=2,
            attempts=3,
            output='{"ok":true}',
            error="attempt 2: timeout",
            next_nodes=("b", "c"),
            queued_at=at(1),
            started_at=at(1.5),
            completed_at=at(2.25),
        )
        skipped = node("skipped", NodeStatus.SKIPPED, skipped=True, completed_at=at(3))
        # next_nodes () ("no child chosen") must stay distinct from None ("all children").
        none_chosen = node("none-chosen", NodeStatus.SUCCEEDED, next_nodes=())
        queued = node("queued", queued_at=at(0))
        nodes = [full, skipped, none_chosen, queued]
        nodes += [
            node(f"out-{name}", NodeStatus.SUCCEEDED, output=text)
            for name, text in TRICKY_OUTPUTS.items()
        ]
        record = execution()
        await contract_store.create_execution(record, nodes)
        got = await contract_store.get_node_results(record.execution_id)
        assert normalized(got) == normalized({n.node_id: n for n in nodes})
        for name, text in TRICKY_OUTPUTS.items():
            assert canonical_json(got[f"out-{name}"].output) == canonical_json(text), name
        assert got["out-zero"].data == 0
        assert got["out-false"].data is False
        assert got["out-empty-string"].data == ""
        assert got["out-json-null"].data is None
        assert got["out-key-order"].data == {"z": 1, "a": {"y": [3, 2, 1], "b": None}}
        assert got["out-big-int"].data == 12345678901234567890
        assert got["none-chosen"].next_nodes == ()
        assert got["queued"].next_nodes is None

    async def test_unknown_execution(self, contract_store: ExecutionStore) -> None:
        assert await contract_store.get_execution("no-such-execution") is None
        assert await contract_store.get_node_results("no-such-execution") == {}

    async def test_nodes_belong_to_their_execution(self, contract_store: ExecutionStore) -> None:
        one, two = execution(), execution()
        await contract_store.create_execution(one, [node("a"), node("b")])
        await contract_store.create_execution(two, [node("a", NodeStatus.RUNNING)])
        assert set(await contract_store.get_node_results(one.execution_id)) == {"a", "b"}
        two_nodes = await contract_store.get_node_results(two.execution_id)
        assert two_nodes == {"a": node("a", NodeStatus.RUNNING)}

    async def test_duplicate_execution_id_is_refused(self, contract_store: ExecutionStore) -> None:
        first = execution("one")
        await contract_store.create_execution(first, [node("a")])
        clash = replace(first, workflow_id="two", status=ExecutionStatus.COMPLETED)
        with pytest.raises(StatePersistenceError):
            await contract_store.create_execution(clash, [node("x")])
        assert await contract_store.get_execution(first.execution_id) == first
        assert await contract_store.get_node_results(first.execution_id) == {"a": node("a")}
        assert await contract_store.get_execution_count() == 1

    async def test_returned_records_are_detached_from_the_store(
        self, contract_store: ExecutionStore
    ) -> None:
        tags = ["a"]
        metadata: dict[str, object] = {"tags": tags, "n": 1}
        record = execution(metadata=metadata)
        created = await contract_store.create_execution(record, [])
        tags.append("changed-after-create")  # the caller's own objects
        metadata["n"] = 3
        created.record.metadata["n"] = 2  # type: ignore[index]
        got = await contract_store.get_execution(record.execution_id)
        assert got is not None
        got.metadata["tags"].append("changed-after-read")
        again = await contract_store.get_execution(record.execution_id)
        assert again is not None
        assert again.metadata == {"tags": ["a"], "n": 1}


class TestFindByPrefix:
    """``find_execution_ids``: what ``spane executions show <prefix>`` resolves with."""

    IDS = (
        "01a24187-cd76-7000-8000-00000000000a",
        "01a24187-cd76-7000-8000-00000000000b",
        "01a24187-cd77-7000-8000-000000000000",
        "01a24188-0000-7000-8000-000000000000",
    )

    @pytest.fixture
    async def stored(self, contract_store: ExecutionStore) -> ExecutionStore:
        for execution_id in reversed(self.IDS):
            await contract_store.create_execution(execution(execution_id=execution_id), [])
        return contract_store

    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [
            ("01a24187-cd76", IDS[:2]),  # what a cut-off table cell showed: two rows
            ("01a24187-cd76-7000-8000-00000000000", IDS[:2]),
            ("01a24187", IDS[:3]),
            ("01a24187-cd77", IDS[2:3]),
            ("01A24187-CD77", IDS[2:3]),  # letters in either case
            (IDS[1], IDS[1:2]),  # a whole id
            ("01a2418", IDS),
            ("", IDS),
            ("01a24187-cd76-7000-8000-00000000000a0", ()),  # longer than an id
            ("01a24187cd76", ()),  # a hyphen missing
            ("01a24187-", IDS[:3]),
            ("01a2418_", ()),  # no wildcard: not SQL's _, nor %
            ("01a24187-cd7%", ()),
            ("%", ()),
            ("02", ()),
            ("zz", ()),
            ("01a24187-cd76\\", ()),  # nor an escape character
        ],
    )
    async def test_ids_by_prefix(
        self, stored: ExecutionStore, prefix: str, expected: tuple[str, ...]
    ) -> None:
        assert await stored.find_execution_ids(prefix) == list(expected)

    async def test_limit(self, stored: ExecutionStore) -> None:
        assert await stored.find_execution_ids("01a2", limit=2) == list(self.IDS[:2])
        assert await stored.find_execution_ids("01a2", limit=0) == []
        with pytest.raises(ValueError, match="negative"):
            await stored.find_execution_ids("01a2", limit=-1)

    async def test_nothing_stored(self, contract_store: ExecutionStore) -> None:
        assert await contract_store.find_execution_ids("01a2") == []


class TestIdempotencyKey:
    async def test_second_create_returns_the_first_execution(
        self, contract_store: ExecutionStore
    ) -> None:
        first = execution("orders", idempotency_key="k1", initial_data='{"n":1}')
        created = await contract_store.create_execution(first, [node("a")])
        assert created.created is True
        second = execution("orders", idempotency_key="k1", initial_data='{"n":2}', created_at=at(5))
        again = await contract_store.create_execution(second, [node("a"), node("b")])
        assert again.created is False
        assert normalized(again.record) == normalized(first)
        # Nothing of the second attempt was written.
        assert await contract_store.get_execution(second.execution_id) is None
        assert await contract_store.get_node_results(second.execution_id) == {}
        assert await contract_store.get_node_results(first.execution_id) == {"a": node("a")}
        assert await contract_store.get_execution_count() == 1

    async def test_key_is_scoped_to_the_workflow(self, contract_store: ExecutionStore) -> None:
        a = await contract_store.create_execution(execution("a", idempotency_key="k"), [])
        b = await contract_store.create_execution(execution("b", idempotency_key="k"), [])
        assert (a.created, b.created) == (True, True)
        assert a.record.execution_id != b.record.execution_id
        assert await contract_store.get_execution_count() == 2

    async def test_no_key_always_creates(self, contract_store: ExecutionStore) -> None:
        for _ in range(3):
            created = await contract_store.create_execution(execution("a"), [])
            assert created.created is True
        assert await contract_store.get_execution_count(workflow_id="a") == 3

    async def test_key_returns_the_first_execution_whatever_its_status(
        self, contract_store: ExecutionStore
    ) -> None:
        first = execution("a", idempotency_key="k")
        await contract_store.create_execution(first, [])
        completed = replace(first, status=ExecutionStatus.COMPLETED, completed_at=at(9))
        await contract_store.transition(
            first.execution_id, lambda snap: Transition(execution=completed)
        )
        again = await contract_store.create_execution(execution("a", idempotency_key="k"), [])
        assert again.created is False
        assert again.record == completed

    async def test_a_key_older_than_idempotency_after_is_released(
        self, contract_store: ExecutionStore
    ) -> None:
        first = execution("a", idempotency_key="k", created_at=at(0))
        await contract_store.create_execution(first, [])
        within = await contract_store.create_execution(
            execution("a", idempotency_key="k", created_at=at(50)), [], idempotency_after=at(-1)
        )
        assert within.created is False
        assert within.record.execution_id == first.execution_id

        later = execution("a", idempotency_key="k", created_at=at(100))
        expired = await contract_store.create_execution(later, [], idempotency_after=at(10))
        assert expired.created is True
        assert expired.record.execution_id == later.execution_id
        old = await contract_store.get_execution(first.execution_id)
        assert old is not None
        assert old.idempotency_key is None  # released, the execution itself kept
        again = await contract_store.create_execution(
            execution("a", idempotency_key="k", created_at=at(101)), [], idempotency_after=at(10)
        )
        assert again.record.execution_id == later.execution_id
        assert await contract_store.get_execution_count() == 2

    async def test_concurrent_creates_with_one_key_create_one_execution(
        self, contract_store: ExecutionStore
    ) -> None:
        attempts = [execution("a", idempotency_key="same") for _ in range(20)]
        results = await asyncio.gather(
            *(contract_store.create_execution(r, [node("n")]) for r in attempts)
        )
        assert sum(r.created for r in results) == 1
        winner = next(r.record for r in results if r.created)
        assert all(r.record == winner for r in results)
        assert await contract_store.get_execution_count() == 1


class TestMetadata:
    async def test_update_merges_keys(self, contract_store: ExecutionStore) -> None:
        record = execution(metadata={"a": 1, "b": {"keep": True}})
        await contract_store.create_execution(record, [])
        await contract_store.update_execution_metadata(
            record.execution_id, {"b": {"new": 1}, "c": [1, 2]}
        )
        await contract_store.update_execution_metadata(record.execution_id, {"d": None})
        got = await contract_store.get_execution(record.execution_id)
        assert got is not None
        assert got.metadata == {"a": 1, "b": {"new": 1}, "c": [1, 2], "d": None}
        assert replace(got, metadata={}) == replace(record, metadata={})  # nothing else moved

    async def test_update_of_unknown_execution_raises(self, contract_store: ExecutionStore) -> None:
        with pytest.raises(ExecutionNotFoundError):
            await contract_store.update_execution_metadata("no-such-execution", {"a": 1})

    async def test_concurrent_updates_lose_no_key(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        await asyncio.gather(
            *(
                contract_store.update_execution_metadata(record.execution_id, {f"k{i}": i})
                for i in range(50)
            )
        )
        got = await contract_store.get_execution(record.execution_id)
        assert got is not None
        assert got.metadata == {f"k{i}": i for i in range(50)}

    async def test_transitions_see_merged_metadata(self, contract_store: ExecutionStore) -> None:
        record = execution(metadata={"a": 1})
        await contract_store.create_execution(record, [])
        await contract_store.update_execution_metadata(record.execution_id, {"b": 2})
        seen = await contract_store.transition(
            record.execution_id,
            lambda snap: Transition(decision=Carried(dict(snap.execution.metadata))),
        )
        assert seen.decision == Carried({"a": 1, "b": 2})


async def _populate(
    store: ExecutionStore, n: int = 30, ids: list[str] | None = None
) -> list[ExecutionRecord]:
    """``n`` executions one second apart, two workflows, three statuses; oldest first."""
    statuses = [ExecutionStatus.RUNNING, ExecutionStatus.COMPLETED, ExecutionStatus.FAILED]
    records = [
        execution(
            "even" if i % 2 == 0 else "odd",
            execution_id=eid,
            status=statuses[i % 3],
            created_at=at(i),
        )
        for i, eid in enumerate(ids or ordered_ids(n))
    ]
    # Insert out of order: listing order must come from the data, not from insertion.
    for record in records[1::2] + records[0::2]:
        await store.create_execution(record, [])
    return records


def _ids(records: object) -> list[str]:
    return [r.execution_id for r in records]  # type: ignore[attr-defined]


class TestListExecutions:
    async def test_newest_first(self, contract_store: ExecutionStore) -> None:
        records = await _populate(contract_store)
        page = await contract_store.list_executions(limit=100)
        assert list(page.items) == records[::-1]
        assert page.next_cursor is None

    async def test_filters(self, contract_store: ExecutionStore) -> None:
        records = await _populate(contract_store)
        newest = records[::-1]

        async def listed(**filters: object) -> list[str]:
            page = await contract_store.list_executions(limit=100, **filters)  # type: ignore[arg-type]
            return _ids(page.items)

        assert await listed(workflow_id="even") == _ids(
            r for r in newest if r.workflow_id == "even"
        )
        assert await listed(workflow_id="nope") == []
        assert await listed(status=ExecutionStatus.FAILED) == _ids(
            r for r in newest if r.status is ExecutionStatus.FAILED
        )
        assert await listed(status=ExecutionStatus.PAUSED) == []
        # since is inclusive, until exclusive.
        assert await listed(since=at(10), until=at(15)) == _ids(records[14:9:-1])
        assert await listed(since=at(25)) == _ids(records[:24:-1])
        assert await listed(until=at(3)) == _ids(records[2::-1])
        assert await listed(
            workflow_id="odd", status=ExecutionStatus.RUNNING, since=at(5), until=at(25)
        ) == _ids(
            r
            for r in newest
            if r.workflow_id == "odd"
            and r.status is ExecutionStatus.RUNNING
            and at(5) <= r.created_at < at(25)
        )

    @pytest.mark.parametrize("limit", [1, 7, 10, 29, 30, 31])
    async def test_keyset_pagination_has_no_gaps_or_duplicates(
        self, contract_store: ExecutionStore, limit: int
    ) -> None:
        records = await _populate(contract_store)
        seen: list[str] = []
        cursor: str | None = None
        pages = 0
        while True:
            page = await contract_store.list_executions(limit=limit, cursor=cursor)
            pages += 1
            assert len(page.items) <= limit
            seen += _ids(page.items)
            if page.next_cursor is None:
                break
            assert len(page.items) == limit  # only a full page can have a next one
            cursor = page.next_cursor
            assert pages <= 31
        assert seen == _ids(records[::-1])
        assert pages == -(-len(records) // limit)  # no trailing empty page

    async def test_pagination_with_filters(self, contract_store: ExecutionStore) -> None:
        records = await _populate(contract_store)
        expected = _ids(
            r for r in records[::-1] if r.workflow_id == "odd" and r.created_at >= at(4)
        )
        seen: list[str] = []
        cursor: str | None = None
        while True:
            page = await contract_store.list_executions(
                workflow_id="odd", since=at(4), limit=4, cursor=cursor
            )
            seen += _ids(page.items)
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert seen == expected

    async def test_new_executions_do_not_shift_later_pages(
        self, contract_store: ExecutionStore
    ) -> None:
        ids = ordered_ids(17)
        records = await _populate(contract_store, 12, ids[:12])
        first = await contract_store.list_executions(limit=5)
        for i, eid in enumerate(ids[12:]):  # newer than everything listed so far
            await contract_store.create_execution(
                execution(execution_id=eid, created_at=at(100 + i)), []
            )
        seen = _ids(first.items)
        cursor = first.next_cursor
        while cursor is not None:
            page = await contract_store.list_executions(limit=5, cursor=cursor)
            seen += _ids(page.items)
            cursor = page.next_cursor
        assert seen == _ids(records[::-1])

    async def test_listing_shows_the_current_state(self, contract_store: ExecutionStore) -> None:
        record = execution()
        await contract_store.create_execution(record, [])
        done = replace(record, status=ExecutionStatus.COMPLETED, completed_at=at(1))
        await contract_store.transition(
            record.execution_id, lambda snap: Transition(execution=done)
        )
        page = await contract_store.list_executions(status=ExecutionStatus.COMPLETED)
        assert list(page.items) == [done]
        assert (await contract_store.list_executions(status=ExecutionStatus.RUNNING)).items == ()

    async def test_negative_limit_is_refused(self, contract_store: ExecutionStore) -> None:
        await _populate(contract_store, 3)
        with pytest.raises(ValueError, match="negative"):
            await contract_store.list_executions(limit=-1)

    async def test_empty(self, contract_store: ExecutionStore) -> None:
        page = await contract_store.list_executions()
        assert page.items == ()
        assert page.next_cursor is None

    async def test_count(self, contract_store: ExecutionStore) -> None:
        records = await _populate(contract_store)
        count = contract_store.get_execution_count
        assert await count() == 30
        assert await count(workflow_id="even") == 15
        assert await count(workflow_id="nope") == 0
        assert await count(status=ExecutionStatus.COMPLETED) == 10
        assert await count(workflow_id="odd", status=ExecutionStatus.RUNNING) == sum(
            1 for r in records if r.workflow_id == "odd" and r.status is ExecutionStatus.RUNNING
        )


class TestFamily:
    async def test_children_and_parent(self, contract_store: ExecutionStore) -> None:
        parent_id, child1_id, child2_id, grandchild_id, other_id = ordered_ids(5)
        parent = execution("p", execution_id=parent_id)
        child1 = execution(
            "c", execution_id=child1_id, parent_execution_id=parent_id, parent_node_id="n1", depth=1
        )
        child2 = execution(
            "c", execution_id=child2_id, parent_execution_id=parent_id, parent_node_id="n2", depth=1
        )
        grandchild = execution(
            "g", execution_id=grandchild_id, parent_execution_id=child1_id, depth=2
        )
        other = execution("p", execution_id=other_id)
        for record in (parent, child1, child2, grandchild, other):
            await contract_store.create_execution(record, [])

        assert await contract_store.get_child_executions(parent_id) == [child1, child2]
        assert await contract_store.get_child_executions(child1_id) == [grandchild]
        assert await contract_store.get_child_executions(child2_id) == []
        assert await contract_store.get_child_executions(other_id) == []
        assert await contract_store.get_child_executions("no-such-execution") == []

        assert await contract_store.get_parent_execution(child1_id) == parent
        assert await contract_store.get_parent_execution(grandchild_id) == child1
        assert await contract_store.get_parent_execution(parent_id) is None
        assert await contract_store.get_parent_execution("no-such-execution") is None

    async def test_family_reads_show_the_current_state(
        self, contract_store: ExecutionStore
    ) -> None:
        parent_id, child_id = ordered_ids(2)
        parent = execution(execution_id=parent_id)
        child = execution(execution_id=child_id, parent_execution_id=parent_id, depth=1)
        await contract_store.create_execution(parent, [])
        await contract_store.create_execution(child, [])
        child_done = replace(child, status=ExecutionStatus.COMPLETED, completed_at=at(1))
        parent_paused = replace(parent, status=ExecutionStatus.PAUSED)
        await contract_store.transition(child_id, lambda s: Transition(execution=child_done))
        await contract_store.transition(parent_id, lambda s: Transition(execution=parent_paused))
        assert await contract_store.get_child_executions(parent_id) == [child_done]
        assert await contract_store.get_parent_execution(child_id) == parent_paused


class TestCreateMany:
    async def test_creates_every_execution_with_its_nodes(
        self, contract_store: ExecutionStore
    ) -> None:
        records = [execution("orders", initial_data=f'{{"n":{i}}}') for i in range(5)]
        await contract_store.create_executions([(r, [node("a"), node("b")]) for r in records])
        for r in records:
            got = await contract_store.get_execution(r.execution_id)
            assert normalized(got) == normalized(r)
            assert set(await contract_store.get_node_results(r.execution_id)) == {"a", "b"}
        assert await contract_store.get_execution_count() == 5

    async def test_a_duplicate_id_writes_nothing(self, contract_store: ExecutionStore) -> None:
        first = execution()
        await contract_store.create_execution(first, [])
        fresh = execution()
        with pytest.raises(StatePersistenceError):
            await contract_store.create_executions([(fresh, []), (first, [])])
        assert await contract_store.get_execution(fresh.execution_id) is None
        assert await contract_store.get_execution_count() == 1

    async def test_idempotency_keys_are_refused(self, contract_store: ExecutionStore) -> None:
        with pytest.raises(ValueError, match="idempotency"):
            await contract_store.create_executions([(execution(idempotency_key="k"), [])])
        assert await contract_store.get_execution_count() == 0


class TestSnapshot:
    async def test_snapshot_reads_execution_and_nodes_together(
        self, contract_store: ExecutionStore
    ) -> None:
        record = execution(initial_data='{"n":1}')
        await contract_store.create_execution(record, [node("a"), node("b")])
        snap = await contract_store.get_snapshot(record.execution_id)
        assert snap is not None
        assert normalized(snap.execution) == normalized(record)
        assert snap.nodes == {"a": node("a"), "b": node("b")}
        assert await contract_store.get_snapshot("no-such-execution") is None
