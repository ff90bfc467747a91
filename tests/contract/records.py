"""Builders for the records the contract tests write. Store-agnostic; no fixtures."""

from __future__ import annotations

import dataclasses
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from spane_py.definitions.graph import WorkflowGraph, compile_workflow
from spane_py.definitions.models import NodeDefinition, WorkflowDefinition
from spane_py.engine.ids import new_execution_id
from spane_py.records import Decision
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import (
    ExecutionRecord,
    ExecutionStore,
    LogRecord,
    NodeRecord,
    SavedWorkflow,
)


@dataclasses.dataclass(frozen=True, slots=True)
class Carried(Decision):
    """A decision a test's ``decide`` hands back to its caller: any value, which the store
    returns untouched (the planner's own decisions are types of their own)."""

    value: Any


# A fixed instant with microseconds (the finest precision every store must keep).
T0 = datetime(2024, 5, 17, 12, 30, 45, 123456, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def ordered_ids(n: int) -> list[str]:
    """``n`` execution ids in creation order (ids minted in one millisecond are sorted)."""
    return sorted(new_execution_id() for _ in range(n))


def execution(
    workflow_id: str = "wf",
    *,
    execution_id: str | None = None,
    status: ExecutionStatus = ExecutionStatus.RUNNING,
    created_at: datetime = T0,
    **fields: Any,
) -> ExecutionRecord:
    return ExecutionRecord(
        execution_id=execution_id or new_execution_id(),
        workflow_id=workflow_id,
        workflow_version=fields.pop("workflow_version", 1),
        status=status,
        created_at=created_at,
        **fields,
    )


def node(node_id: str, status: NodeStatus = NodeStatus.QUEUED, **fields: Any) -> NodeRecord:
    return NodeRecord(node_id=node_id, status=status, **fields)


def log(execution_id: str, message: str, *, node_id: str | None = None, **fields: Any) -> LogRecord:
    return LogRecord(
        execution_id=execution_id,
        level=fields.pop("level", "info"),
        message=message,
        timestamp=fields.pop("timestamp", T0),
        node_id=node_id,
        fields=fields.pop("fields", {}),
    )


def definition(workflow_id: str, *node_types: str, **config: Any) -> WorkflowDefinition:
    """A chain of nodes n0 -> n1 -> ...; the types (and config) shape the content hash."""
    types = node_types or ("noop",)
    nodes = [
        NodeDefinition(
            id=f"n{i}",
            type=t,
            config=dict(config),
            outputs=[f"n{i + 1}"] if i + 1 < len(types) else [],
        )
        for i, t in enumerate(types)
    ]
    return WorkflowDefinition(id=workflow_id, nodes=nodes)


def diamond(workflow_id: str = "diamond") -> WorkflowGraph:
    """a -> (b, c) -> d"""
    return compile_workflow(
        WorkflowDefinition(
            id=workflow_id,
            nodes=[
                NodeDefinition(id="a", type="noop", outputs=["b", "c"]),
                NodeDefinition(id="b", type="noop", outputs=["d"]),
                NodeDefinition(id="c", type="noop", outputs=["d"]),
                NodeDefinition(id="d", type="noop"),
            ],
        )
    )


async def save(
    store: ExecutionStore, definition: WorkflowDefinition, change_notes: str | None = None
) -> SavedWorkflow:
    """Save the way the engine does: the normalised definition and its content hash."""
    graph = compile_workflow(definition)
    return await store.save_workflow(
        graph.definition, content_hash=graph.content_hash, change_notes=change_notes
    )


def canonical_json(text: str | None) -> str | None:
    """JSON text in one canonical form: stores keep JSON values, not their formatting
    (PostgreSQL's jsonb normalises whitespace and the order of object keys)."""
    if text is None:
        return None
    return json.dumps(json.loads(text), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def normalized(value: Any) -> Any:
    """A record (or a dict/list of records) with its JSON text in canonical form."""
    if isinstance(value, dict):
        return {k: normalized(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [normalized(v) for v in value]
    if isinstance(value, NodeRecord):
        return dataclasses.replace(value, output=canonical_json(value.output))
    if isinstance(value, ExecutionRecord):
        return dataclasses.replace(value, initial_data=canonical_json(value.initial_data))
    return value
