"""Contract: searching executions (``list_executions``' filters beyond workflow, status and
time, which test_executions.py pins): an id prefix, ``waiting``, field matches on the
metadata and the input (jsonb containment), parents and roots, each with the keyset
cursor."""

from __future__ import annotations

from typing import Any

import pytest

from spane_py.errors import SerializationError
from spane_py.execution_search import FieldMatch
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import ExecutionRecord, ExecutionStore

from .records import at, execution, node, ordered_ids

RUNNING, PAUSED, COMPLETED = (
    ExecutionStatus.RUNNING,
    ExecutionStatus.PAUSED,
    ExecutionStatus.COMPLETED,
)

# (workflow, status, metadata, input JSON, node statuses, parent index)
ROWS: list[tuple[str, ExecutionStatus, dict[str, Any], str, list[NodeStatus], int | None]] = [
    ("orders", RUNNING, {"tenant": "acme"}, '{"customer_id": 7}', [NodeStatus.WAITING], None),
    ("orders", RUNNING, {"tenant": "acme"}, '{"customer_id": "7"}', [NodeStatus.RUNNING], None),
    ("orders", PAUSED, {"tenant": "zeta"}, '{"customer_id": 7.0}', [NodeStatus.WAITING], None),
    ("orders", COMPLETED, {"tenant": "acme", "tags": ["a", "b"]}, "[7]", [], None),
    ("billing", RUNNING, {"tenant": "acme", "plan": {"tier": 2, "trial": True}}, "7", [], 0),
    (
        "billing",
        RUNNING,
        {"tenant": "zeta", "plan": {"tier": 2}},
        '{"customer_id": 8, "x": null}',
        [NodeStatus.SUCCEEDED, NodeStatus.WAITING],
        0,
    ),
    ("billing", COMPLETED, {"plan": {"tier": 1, "trial": 1}, "tags": ["b"]}, "null", [], 4),
    ("orders", RUNNING, {"tenant": "ACME", "n": None}, '{"customer_id": true}', [], None),
]


async def _populate(store: ExecutionStore) -> list[ExecutionRecord]:
    ids = ordered_ids(len(ROWS))
    records = []
    for i, (workflow, status, metadata, data, _nodes, parent) in enumerate(ROWS):
        records.append(
            execution(
                workflow,
                execution_id=ids[i],
                status=status,
                created_at=at(i),
                metadata=metadata,
                initial_data=data,
                parent_execution_id=ids[parent] if parent is not None else None,
                parent_node_id="call" if parent is not None else None,
                depth=0 if parent is None else 1,
            )
        )
    for record, row in zip(records[::-1], ROWS[::-1], strict=True):  # out of order
        nodes = [node(f"n{j}", s) for j, s in enumerate(row[4])]
        await store.create_execution(record, nodes)
    return records


@pytest.fixture
async def data(contract_store: ExecutionStore) -> tuple[ExecutionStore, list[str]]:
    records = await _populate(contract_store)
    return contract_store, [r.execution_id for r in records]


async def _listed(store: ExecutionStore, ids: list[str], **filters: Any) -> list[int]:
    """The rows listed, by their index in ROWS (newest first), read in pages of 2 through
    the cursor and checked against one page of all."""
    whole = await store.list_executions(limit=100, **filters)
    assert whole.next_cursor is None
    seen: list[str] = []
    cursor: str | None = None
    for _ in range(20):
        page = await store.list_executions(limit=2, cursor=cursor, **filters)
        seen += [r.execution_id for r in page.items]
        cursor = page.next_cursor
        if cursor is None:
            break
        assert len(page.items) == 2
    assert seen == [r.execution_id for r in whole.items]
    return [ids.index(i) for i in seen]


def m(text: str) -> FieldMatch:
    return FieldMatch.parse(text)


class TestIdPrefix:
    async def test_a_prefix_of_each_length(self, data: tuple[ExecutionStore, list[str]]) -> None:
        store, ids = data
        target = ids[3]
        for n in (1, 8, 9, 13, 20, 36):
            prefix = target[:n]
            expected = sorted(
                (i for i, x in enumerate(ids) if x.startswith(prefix)), key=lambda i: ids[i]
            )[::-1]
            assert await _listed(store, ids, id_prefix=prefix) == expected
            assert await _listed(store, ids, id_prefix=prefix.upper()) == expected
        assert await _listed(store, ids, id_prefix=target) == [3]
        assert await _listed(store, ids, id_prefix="") == list(range(len(ROWS)))[::-1]

    async def test_no_uuid_has_it(self, data: tuple[ExecutionStore, list[str]]) -> None:
        store, ids = data
        for prefix in ("x", "%", "_", ids[0][:8] + "x", ids[0][:7] + "-", ids[0] + "0"):
            assert await _listed(store, ids, id_prefix=prefix) == []

    async def test_with_other_filters(self, data: tuple[ExecutionStore, list[str]]) -> None:
        store, ids = data
        common = ids[0][:8]  # minted in one millisecond: a shared prefix
        shared = [i for i, x in enumerate(ids) if x.startswith(common)]
        assert await _listed(store, ids, id_prefix=common, workflow_id="billing") == [
            i for i in shared[::-1] if ROWS[i][0] == "billing"
        ]


class TestWaiting:
    async def test_running_with_a_node_waiting(
        self, data: tuple[ExecutionStore, list[str]]
    ) -> None:
        store, ids = data
        # 2 waits but is paused; 1 runs a node; 5 has one node done and one waiting.
        assert await _listed(store, ids, waiting=True) == [5, 0]
        assert await _listed(store, ids, waiting=True, workflow_id="orders") == [0]
        assert await _listed(store, ids, waiting=True, status=RUNNING) == [5, 0]
        assert await _listed(store, ids, waiting=True, status=PAUSED) == []
        assert await _listed(store, ids, waiting=True, since=at(1), until=at(5)) == []


class TestFieldMatches:
    @pytest.mark.parametrize(
        ("where", "expected"),
        [
            (["metadata.tenant=acme"], [4, 3, 1, 0]),
            (["metadata.tenant=ACME"], [7]),  # strings exactly
            (["metadata.tenant=nobody"], []),
            (["metadata.plan.tier=2"], [5, 4]),
            (["metadata.plan.tier=2.0"], [5, 4]),  # numbers by value
            (["metadata.plan.trial=true"], [4]),  # true is not 1
            (["metadata.plan.trial=1"], [6]),
            (['metadata.plan={"tier": 2}'], [5, 4]),  # an object: contained
            (['metadata.tags=["b"]'], [6, 3]),  # an array: each element found
            (['metadata.tags=["a","b"]'], [3]),
            (["metadata.tags=[]"], [6, 3]),
            (["metadata.tags=b"], []),  # a string is not an array holding it
            (["metadata.n=null"], [7]),
            (["metadata.plan.tier.x=2"], []),  # through a number
            (["metadata.tenant=acme", "metadata.plan.tier=2"], [4]),  # all of them
            (["input.customer_id=7"], [2, 0]),
            (['input.customer_id="7"'], [1]),
            (["input.customer_id=true"], [7]),
            (["input.x=null"], [5]),
            (["input.customer_id=7", "metadata.tenant=acme"], [0]),
        ],
    )
    async def test_matches(
        self, data: tuple[ExecutionStore, list[str]], where: list[str], expected: list[int]
    ) -> None:
        store, ids = data
        assert await _listed(store, ids, where=[m(w) for w in where]) == expected

    async def test_with_other_filters(self, data: tuple[ExecutionStore, list[str]]) -> None:
        store, ids = data
        acme = [m("metadata.tenant=acme")]
        assert await _listed(store, ids, where=acme, workflow_id="orders") == [3, 1, 0]
        assert await _listed(store, ids, where=acme, status=RUNNING) == [4, 1, 0]
        assert await _listed(store, ids, where=acme, waiting=True) == [0]
        assert await _listed(store, ids, where=acme, since=at(1), until=at(4)) == [3, 1]

    async def test_unstorable_text_is_refused(self) -> None:
        with pytest.raises(SerializationError):
            FieldMatch.parse("metadata.tenant=a\x00b")


class TestFamilies:
    async def test_parents_and_roots(self, data: tuple[ExecutionStore, list[str]]) -> None:
        store, ids = data
        assert await _listed(store, ids, parent_ids=[ids[0]]) == [5, 4]
        assert await _listed(store, ids, parent_ids=[ids[0], ids[4], ids[1]]) == [6, 5, 4]
        assert await _listed(store, ids, parent_ids=[ids[4], "not-a-uuid"]) == [6]
        assert await _listed(store, ids, parent_ids=[]) == []
        assert await _listed(store, ids, parent_ids=["not-a-uuid"]) == []
        assert await _listed(store, ids, roots_only=True) == [7, 3, 2, 1, 0]
        assert await _listed(store, ids, roots_only=True, workflow_id="billing") == []
        assert await _listed(store, ids, parent_ids=[ids[0]], waiting=True) == [5]
