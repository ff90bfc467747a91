"""Node spans: the records of an execution's trace, one per attempt of a node.

An attempt that ran an executor spans its run. A delay, wait or sub-workflow node that
suspended spans its wait: from when it began waiting to when the wait ended — its due
time came, its resume token was used, it timed out, its child execution ended, or its
execution was stopped. Such a span says so in its attributes: ``waited`` (True), ``wait``
(what it waited for: ``timer``, ``event`` or ``child``), and for an ``event`` wait,
``resumed`` (True: a resume token ended it; False: its timeout did).

Pure: building a span writes and emits nothing (the planner builds some inside its
decisions); the caller writes it with its transition and emits ``node.span``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.definitions.models import NodeDefinition
from spane_py.errors import SerializationError
from spane_py.records import NodeRecord, SpanRecord
from spane_py.state import NodeStatus


def span_id(execution_id: str, node_id: str, generation: int, attempt: int) -> str:
    """Writing a span with the same id twice is a no-op: one span per attempt."""
    return f"{execution_id}:{node_id}:{generation}:{attempt}"


def wait_kind(record: NodeRecord | None) -> str | None:
    """What a waiting node waits for (``timer``, ``event``, ``child``); None when the
    record is not of a waiting node."""
    if record is None or record.status is not NodeStatus.WAITING or not record.wait:
        return None
    try:
        info = _json.loads(record.wait)
    except SerializationError:
        return "unknown"
    kind = info.get("kind") if isinstance(info, dict) else None
    return kind if isinstance(kind, str) else "unknown"


def wait_attributes(kind: str | None, *, resumed: bool | None = None) -> dict[str, Any]:
    """The attributes that mark a span as a wait (nothing when ``kind`` is None)."""
    if kind is None:
        return {}
    attributes: dict[str, Any] = {"waited": True, "wait": kind}
    if kind == "event" and resumed is not None:
        attributes["resumed"] = resumed
    return attributes


def node_span(
    execution_id: str,
    node_id: str,
    *,
    node: NodeDefinition | None,
    generation: int,
    attempt: int,
    status: str,
    started_at: datetime,
    ended_at: datetime,
    workflow_version: int,
    worker_id: str | None = None,
    error: str | None = None,
    traceback: str | None = None,
    extra: dict[str, Any] | None = None,
) -> SpanRecord:
    """One attempt of one node. ``node`` None (its definition unknown here): named by its id."""
    attributes: dict[str, Any] = {
        "type": node.type if node is not None else "",
        "workflow_version": workflow_version,
    }
    attributes.update(extra or {})
    return SpanRecord(
        span_id=span_id(execution_id, node_id, generation, attempt),
        execution_id=execution_id,
        node_id=node_id,
        name=(node.name or node.id) if node is not None else node_id,
        attempt=attempt,
        status=status,
        started_at=started_at,
        ended_at=ended_at,
        worker_id=worker_id,
        error=error,
        traceback=traceback,
        attributes=attributes,
    )


def stopped_span(
    execution_id: str,
    record: NodeRecord,
    *,
    node: NodeDefinition | None,
    workflow_version: int,
    status: str,
    error: str | None,
    now: datetime,
) -> SpanRecord | None:
    """The span of a node that ran or waited when its execution was stopped (cancelled or
    timed out), ending now; None for a node that had not started."""
    if record.started_at is None or record.status not in (NodeStatus.RUNNING, NodeStatus.WAITING):
        return None
    return node_span(
        execution_id,
        record.node_id,
        node=node,
        generation=record.generation,
        attempt=max(record.attempts, 1),
        status=status,
        started_at=record.started_at,
        ended_at=now,
        workflow_version=workflow_version,
        error=error,
        extra=wait_attributes(wait_kind(record), resumed=False),
    )
