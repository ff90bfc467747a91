"""The planner: pure decisions about an execution. No I/O, no clock, no randomness.

Each ``plan_*`` function returns a ``decide`` callable for ``ExecutionStore.transition``:
given a snapshot of the execution it returns the ``Transition`` to write. Rules (DESIGN.md,
"Execution model"):

* entry nodes get the initial data; a node with one parent gets that parent's data; a node
  with several gets ``{parent_id: data}`` of the parents whose edge to it is active;
* an edge parent -> child is active when the parent succeeded and its ``next_nodes`` is
  None or names the child; a child waits until every parent is terminal, then runs if at
  least one edge is active and is skipped otherwise (so skips cascade);
* a node failing for good fails the execution at once; nothing new starts after that,
  while nodes already running may finish and are recorded;
* the execution completes when every node is terminal; it settles exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.definitions.graph import WorkflowGraph
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import (
    Decide,
    ExecutionRecord,
    ExecutionSnapshot,
    NodeRecord,
    SpanRecord,
    Transition,
    evolve_execution,
)

# Outcomes of plan_start, read by the node runner.
RUN = "run"
DUPLICATE = "duplicate"  # the node already finished: do nothing
STALE = "stale"  # the job belongs to an older run generation of the node
DROPPED = "dropped"  # the execution ended; the node is marked cancelled
PARKED = "parked"  # the execution is paused; the node stays queued until resume
UNKNOWN = "unknown"  # the node was never queued for this execution

# Outcomes of plan_completion.
RECORDED = "recorded"
SETTLED_COMPLETED = "completed"
SETTLED_FAILED = "failed"


@dataclass(frozen=True, slots=True)
class NodeOutcome:
    """The final result of a node's run, as the runner hands it to the planner."""

    status: NodeStatus  # SUCCEEDED, FAILED or SKIPPED
    output: str | None = None
    error: str | None = None
    next_nodes: tuple[str, ...] | None = None
    attempt: int = 0  # the attempt that produced it (0: keep the record's count)
    started_at: datetime | None = None
    traceback: str | None = None  # of a failure, for its span (not kept in the node record)


@dataclass(frozen=True, slots=True)
class Resend:
    """What a duplicate completion's caller sends again: jobs of claimed children (a no-op
    where they exist) and the settled announcement."""

    jobs: tuple[str, ...]
    settled: bool


@dataclass(frozen=True, slots=True)
class StartPayload:
    attempt: int
    execution: ExecutionRecord
    nodes: dict[str, NodeRecord]
    snapshot: ExecutionSnapshot  # what the decision saw: the completion may start from it


def initial_nodes(graph: WorkflowGraph, now: datetime) -> list[NodeRecord]:
    """Node records a new execution starts with: entry nodes queued, unreachable ones skipped."""
    records = [
        NodeRecord(node_id=n, status=NodeStatus.QUEUED, queued_at=now) for n in graph.entry_nodes
    ]
    records.extend(
        NodeRecord(node_id=n, status=NodeStatus.SKIPPED, skipped=True, completed_at=now)
        for n in graph.unreachable
    )
    return records


def plan_start(node_id: str, generation: int, now: datetime) -> Decide:
    """Whether a delivered job runs. Running it writes nothing: the attempt is recorded with
    its result (``plan_completion`` / ``plan_retry``), and by ``plan_mark_running`` once the
    node has run for a moment — so a short node costs one write, not two."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None:
            return Transition(outcome=UNKNOWN)
        if rec.generation != generation:
            return Transition(outcome=STALE)
        if rec.status.is_terminal:
            return Transition(outcome=DUPLICATE)
        status = snap.execution.status
        if status in (ExecutionStatus.PAUSED, ExecutionStatus.QUEUED):
            return Transition(outcome=PARKED)
        if status is not ExecutionStatus.RUNNING:
            return Transition(
                nodes=(rec.evolve(status=NodeStatus.CANCELLED, completed_at=now),),
                outcome=DROPPED,
            )
        return Transition(
            outcome=RUN,
            payload=StartPayload(rec.attempts + 1, snap.execution, dict(snap.nodes), snap),
        )

    return decide


def plan_mark_running(node_id: str, generation: int, attempt: int, started_at: datetime) -> Decide:
    """Record that attempt ``attempt`` of a node is under way (when it has not finished)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status.is_terminal
            or rec.attempts >= attempt
            or snap.execution.status is not ExecutionStatus.RUNNING
        ):
            return Transition(outcome=DUPLICATE)
        running = rec.evolve(status=NodeStatus.RUNNING, attempts=attempt, started_at=started_at)
        return Transition(nodes=(running,), outcome=RUN)

    return decide


def plan_retry(
    node_id: str,
    generation: int,
    error: str,
    now: datetime,
    *,
    attempt: int = 0,
    started_at: datetime | None = None,
    spans: tuple[SpanRecord, ...] = (),
) -> Decide:
    """A failed attempt that will be retried: the node goes back to queued, the attempt
    counted (and traced with ``spans``)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation or rec.status.is_terminal:
            return Transition(outcome=DUPLICATE)
        attempts = max(rec.attempts, attempt)
        started = started_at or rec.started_at
        if snap.execution.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            cancelled = rec.evolve(
                status=NodeStatus.CANCELLED,
                error=error,
                completed_at=now,
                attempts=attempts,
                started_at=started,
            )
            return Transition(nodes=(cancelled,), outcome=DROPPED, spans=spans)
        queued = rec.evolve(
            status=NodeStatus.QUEUED,
            error=error,
            queued_at=now,
            attempts=attempts,
            started_at=started,
        )
        return Transition(nodes=(queued,), outcome=RUN, spans=spans)

    return decide


def plan_completion(
    graph: WorkflowGraph,
    node_id: str,
    generation: int,
    outcome: NodeOutcome,
    now: datetime,
    *,
    spans: tuple[SpanRecord, ...] = (),
) -> Decide:
    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation:
            return Transition(outcome=DUPLICATE)
        if rec.status.is_terminal:
            # Already recorded — by another delivery, or by our own write whose answer was
            # lost. Whoever recorded it may not have sent the jobs of the children it
            # claimed: name them again (sending an existing job again is a no-op).
            queued = tuple(
                c
                for c in graph.children[node_id]
                if (kid := snap.nodes.get(c)) is not None and kid.status is NodeStatus.QUEUED
            )
            running = snap.execution.status is ExecutionStatus.RUNNING
            again = Resend(queued if running else (), snap.execution.status.is_terminal)
            return Transition(outcome=DUPLICATE, payload=again)

        done = rec.evolve(
            status=outcome.status,
            output=outcome.output,
            error=outcome.error,
            next_nodes=outcome.next_nodes,
            attempts=max(rec.attempts, outcome.attempt),
            started_at=outcome.started_at or rec.started_at,
            skipped=outcome.status is NodeStatus.SKIPPED,
            completed_at=now,
        )
        execution = snap.execution
        if execution.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            return Transition(nodes=(done,), outcome=RECORDED, spans=spans)

        if outcome.status is NodeStatus.FAILED:
            failed = evolve_execution(
                execution,
                status=ExecutionStatus.FAILED,
                completed_at=now,
                error=f"node {node_id!r} failed: {outcome.error}",
            )
            return Transition(nodes=(done,), execution=failed, outcome=SETTLED_FAILED, spans=spans)

        nodes = dict(snap.nodes)
        nodes[node_id] = done
        changed: dict[str, NodeRecord] = {node_id: done}
        claimed: list[str] = []
        todo = list(graph.children[node_id])
        while todo:
            child = todo.pop(0)
            if child in nodes:
                continue
            parents = [nodes.get(p) for p in graph.parents[child]]
            if any(p is None or not p.status.is_terminal for p in parents):
                continue
            if any(_edge_active(p, child) for p in parents if p is not None):
                rec_child = NodeRecord(node_id=child, status=NodeStatus.QUEUED, queued_at=now)
                claimed.append(child)
            else:
                rec_child = NodeRecord(
                    node_id=child, status=NodeStatus.SKIPPED, skipped=True, completed_at=now
                )
                todo.extend(graph.children[child])
            nodes[child] = rec_child
            changed[child] = rec_child

        settled: ExecutionRecord | None = None
        result = RECORDED
        if all(n in nodes and nodes[n].status.is_terminal for n in graph.order):
            settled = evolve_execution(
                execution, status=ExecutionStatus.COMPLETED, completed_at=now
            )
            result = SETTLED_COMPLETED
        # A paused execution claims its ready children but sends no jobs: resume does.
        enqueue = tuple(claimed) if execution.status is ExecutionStatus.RUNNING else ()
        return Transition(
            nodes=tuple(changed.values()),
            execution=settled,
            enqueue=enqueue,
            outcome=result,
            spans=spans,
        )

    return decide


def _edge_active(parent: NodeRecord, child: str) -> bool:
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
        return rec.data if rec is not None and _edge_active(rec, node_id) else None
    merged: dict[str, Any] = {}
    for parent in parents:
        rec = nodes.get(parent)
        if rec is not None and _edge_active(rec, node_id):
            merged[parent] = rec.data
    return merged


def parent_results(
    graph: WorkflowGraph, node_id: str, nodes: dict[str, NodeRecord]
) -> dict[str, NodeRecord]:
    return {p: nodes[p] for p in graph.parents[node_id] if p in nodes}
