"""The graph's rules, shared by the planner's decisions: which nodes a new execution starts
with, which pending nodes a finished one makes ready (claimed or skipped), when the
execution settles and with what output, and what input a node gets. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine.decisions import Resend
from spane_py.records import ExecutionRecord, ExecutionSnapshot, NodeRecord, evolve_execution
from spane_py.state import ExecutionStatus, NodeStatus

# Node states that hold a job, or wait for one.
IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.WAITING)


def initial_nodes(
    graph: WorkflowGraph, now: datetime, *, due: datetime | None = None
) -> list[NodeRecord]:
    """Node records a new execution starts with: entry nodes queued (as of ``due`` for a
    deferred start, so the sweeper does not send them early), unreachable ones skipped."""
    records = [
        NodeRecord(node_id=n, status=NodeStatus.QUEUED, queued_at=due or now)
        for n in graph.entry_nodes
    ]
    records.extend(
        NodeRecord(node_id=n, status=NodeStatus.SKIPPED, skipped=True, completed_at=now)
        for n in graph.unreachable
    )
    return records


def resend(graph: WorkflowGraph, node_id: str, snap: ExecutionSnapshot) -> Resend:
    """A finished node's claimed children (their jobs may never have gone out) and whether
    its execution has settled."""
    queued = tuple(
        (c, kid.generation)
        for c in graph.children[node_id]
        if (kid := snap.nodes.get(c)) is not None and kid.status is NodeStatus.QUEUED
    )
    running = snap.execution.status is ExecutionStatus.RUNNING
    return Resend(
        queued if running else (), snap.execution.status.is_terminal, snap.execution.priority
    )


def pending(rec: NodeRecord | None) -> bool:
    return rec is None or rec.status is NodeStatus.PENDING


def claim_ready(
    graph: WorkflowGraph,
    nodes: dict[str, NodeRecord],
    changed: dict[str, NodeRecord],
    candidates: tuple[str, ...] | list[str],
    now: datetime,
) -> list[str]:
    """Claim (queue) or skip every pending candidate whose parents are all terminal; skips
    cascade to their children. Updates ``nodes`` and ``changed``; returns the claimed ids.
    A child of a FAILED parent stays pending: the execution fails (again) instead."""
    claimed: list[str] = []
    todo = list(candidates)
    while todo:
        child = todo.pop(0)
        prev = nodes.get(child)
        if not pending(prev):
            continue
        parents = [nodes.get(p) for p in graph.parents[child]]
        if any(p is None or not p.status.is_terminal for p in parents):
            continue
        if any(p is not None and p.status is NodeStatus.FAILED for p in parents):
            continue
        gen = prev.generation if prev is not None else 0
        if any(edge_active(p, child) for p in parents if p is not None):
            rec_child = NodeRecord(
                node_id=child, status=NodeStatus.QUEUED, queued_at=now, generation=gen
            )
            claimed.append(child)
        else:
            rec_child = NodeRecord(
                node_id=child,
                status=NodeStatus.SKIPPED,
                skipped=True,
                completed_at=now,
                generation=gen,
            )
            todo.extend(graph.children[child])
        nodes[child] = rec_child
        changed[child] = rec_child
    return claimed


def settle(
    graph: WorkflowGraph, execution: ExecutionRecord, nodes: dict[str, NodeRecord], now: datetime
) -> ExecutionRecord | None:
    """The settled execution — completed when every node is terminal and none failed;
    failed when nothing is in flight and a node failed (only after a partial retry) — or
    None while it still runs."""
    records = [nodes.get(n) for n in graph.order]
    if all(r is not None and r.status.is_terminal for r in records):
        failed = [r for r in records if r is not None and r.status is NodeStatus.FAILED]
        if not failed:
            return evolve_execution(
                execution,
                status=ExecutionStatus.COMPLETED,
                completed_at=now,
                error=None,
                output=final_output(graph, nodes),
            )
    if any(r is not None and r.status in IN_FLIGHT for r in records):
        return None
    failed = [r for r in records if r is not None and r.status is NodeStatus.FAILED]
    if not failed:
        return None
    error = f"node {failed[0].node_id!r} failed: {failed[0].error}"
    return evolve_execution(execution, status=ExecutionStatus.FAILED, completed_at=now, error=error)


def final_output(graph: WorkflowGraph, nodes: Mapping[str, NodeRecord]) -> str:
    """The output of a completed execution, as JSON text: the data of its final nodes (the
    nodes without children). One final node: its data; several: ``{node_id: data}``. Only
    a final node that succeeded counts: a skipped one (a branch not taken) is left out of
    the object, and a lone final node that was skipped gives ``null``. The sub-workflow
    node hands its parent this value (``builtin_subworkflow``).

    Built from the nodes' JSON text, without decoding it."""
    finals = [n for n in graph.order if not graph.children[n]]
    if len(finals) == 1:
        return _succeeded_output(nodes.get(finals[0])) or "null"
    parts = [
        f"{_json.dumps(n)}:{data}"
        for n in finals
        if (data := _succeeded_output(nodes.get(n))) is not None
    ]
    return "{" + ",".join(parts) + "}"


def _succeeded_output(rec: NodeRecord | None) -> str | None:
    """A node's data as JSON text when it succeeded (``null`` when it has none)."""
    if rec is None or rec.status is not NodeStatus.SUCCEEDED:
        return None
    return rec.output if rec.output is not None else "null"


def descendants(graph: WorkflowGraph, roots: list[str]) -> list[str]:
    """Every node below ``roots``, in the graph's order."""
    seen: set[str] = set()
    todo = [c for r in roots for c in graph.children[r]]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(graph.children[n])
    return [n for n in graph.order if n in seen]


def edge_active(parent: NodeRecord, child: str) -> bool:
    """The parent succeeded and its ``next_nodes`` is None or names the child."""
    if parent.status is not NodeStatus.SUCCEEDED:
        return False
    return parent.next_nodes is None or child in parent.next_nodes


def node_input(
    graph: WorkflowGraph, node_id: str, execution: ExecutionRecord, nodes: dict[str, NodeRecord]
) -> Any:
    """The ``input_data`` a node receives (SPANE's data-passing rules)."""
    parents = graph.parents[node_id]
    if node_id in graph.entry_nodes or not parents:
        return _json.loads(execution.initial_data)
    if len(parents) == 1:
        rec = nodes.get(parents[0])
        return rec.data if rec is not None and edge_active(rec, node_id) else None
    merged: dict[str, Any] = {}
    for parent in parents:
        rec = nodes.get(parent)
        if rec is not None and edge_active(rec, node_id):
            merged[parent] = rec.data
    return merged


def parent_results(
    graph: WorkflowGraph, node_id: str, nodes: dict[str, NodeRecord]
) -> dict[str, NodeRecord]:
    return {p: nodes[p] for p in graph.parents[node_id] if p in nodes}
