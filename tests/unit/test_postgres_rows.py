"""The PostgreSQL store's row mappers read the columns its statements select, by name; a
snapshot's nodes (an anonymous ROW, no names) in the order that ROW is built from."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.postgres import rows, sql

AT = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


class Recording(dict[str, Any]):
    """A row that remembers which columns were read."""

    def __init__(self, values: dict[str, Any]) -> None:
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, column: str) -> Any:
        self.read.add(column)
        return super().__getitem__(column)


def names(columns: str) -> list[str]:
    """The names asyncpg gives a select list's columns (``e.x::text`` is ``x``)."""
    return [re.sub(r"::\w+$", "", c.strip()).split(".")[-1] for c in columns.split(",")]


def node_values() -> dict[str, Any]:
    return {
        "node_id": "a",
        "status": "succeeded",
        "generation": 2,
        "attempts": 3,
        "output": '{"x": 1}',
        "error": "boom",
        "next_nodes": ["b", "c"],
        "skipped": True,
        "queued_at": AT,
        "started_at": AT.replace(second=6),
        "completed_at": AT.replace(second=7),
        "wake_at": AT.replace(second=8),
        "wait": '{"child": "x"}',
        "wait_child": "00000000-0000-0000-0000-000000000009",
    }


def execution_values() -> dict[str, Any]:
    return {
        "execution_id": "00000000-0000-0000-0000-000000000001",
        "workflow_id": "wf",
        "workflow_version": 4,
        "status": "running",
        "initial_data": '{"in": 1}',
        "metadata": '{"m": true}',
        "parent_execution_id": None,
        "parent_node_id": None,
        "depth": 0,
        "priority": 5,
        "idempotency_key": "k",
        "created_at": AT,
        "started_at": AT,
        "completed_at": None,
        "error": None,
        "concurrency_key": '"c-1"',
        "output": '{"e": [1, 2]}',
    }


def test_the_node_columns_are_listed_once_in_one_order() -> None:
    assert names(sql.NODE_COLUMNS) == list(sql.NODE_FIELDS)
    assert names(sql.NODE_READ_COLUMNS) == list(sql.NODE_FIELDS)
    assert f"ROW({sql.NODE_READ_COLUMNS})" in sql.SNAPSHOT


def test_the_execution_and_node_mappers_read_exactly_the_selected_columns() -> None:
    execution = Recording(execution_values())
    assert list(execution) == names(sql.EXECUTION_COLUMNS)
    record = rows.execution(execution)
    assert execution.read == set(execution)
    assert record.status is ExecutionStatus.RUNNING
    assert record.metadata == {"m": True}
    assert record.concurrency_key == '"c-1"'
    assert record.output == '{"e": [1, 2]}'

    node = Recording(node_values())
    rows.node(node)
    assert node.read == set(names(sql.NODE_READ_COLUMNS))


def test_a_snapshot_node_is_read_by_position_in_the_order_of_node_fields() -> None:
    values = node_values()
    composite = tuple(values[name] for name in sql.NODE_FIELDS)
    node = rows.composite_node(composite)
    assert node == rows.node(values)
    assert node.status is NodeStatus.SUCCEEDED
    assert node.next_nodes == ("b", "c")
    assert node.wake_at == AT.replace(second=8)

    snapshot = rows.snapshot({**execution_values(), "revision": 7, "nodes": [composite]})
    assert snapshot.revision == 7
    assert snapshot.nodes == {"a": node}
    assert snapshot.execution.execution_id == "00000000-0000-0000-0000-000000000001"
