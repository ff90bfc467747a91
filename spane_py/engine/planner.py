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
* the execution completes when every node is terminal; it settles exactly once;
* a WAITING node (delay, sub-workflow, wait) holds no job: its job is sent again when it
  may wake, and the runner's built-ins decide whether it completes;
* after ``retry_execution`` a node may stay FAILED while others run: its children are not
  claimed, and the execution fails again once nothing is left in flight.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from spane_py import _json
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import spans
from spane_py.records import (
    Decide,
    DlqRecord,
    ExecutionRecord,
    ExecutionSnapshot,
    NodeRecord,
    SpanRecord,
    Transition,
    evolve_execution,
)
from spane_py.state import ExecutionStatus, NodeStatus

# Outcomes of plan_start, read by the node runner.
RUN = "run"
DUPLICATE = "duplicate"  # the node already finished: do nothing
STALE = "stale"  # the job belongs to an older run generation of the node
DROPPED = "dropped"  # the execution ended; the node is marked cancelled
PARKED = "parked"  # the execution is paused; the node stays queued until resume
UNKNOWN = "unknown"  # the node was never queued for this execution
WAKE = "wake"  # a waiting node's job arrived: the runner checks what it waits for

# Outcomes of the control plans (pause, resume, cancel, retry).
CHANGED = "changed"
REFUSED = "refused"  # payload: why, for the caller's error

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

    jobs: tuple[tuple[str, int], ...]  # (node id, generation)
    settled: bool
    priority: int | None = None  # the execution's


@dataclass(frozen=True, slots=True)
class Wakeup:
    """A job to send after a control transition: ``due`` None means now."""

    node_id: str
    generation: int
    due: datetime | None = None


@dataclass(frozen=True, slots=True)
class StartPayload:
    attempt: int
    execution: ExecutionRecord
    nodes: dict[str, NodeRecord]
    snapshot: ExecutionSnapshot  # what the decision saw: the completion may start from it


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


def _resend(graph: WorkflowGraph, node_id: str, snap: ExecutionSnapshot) -> Resend:
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


def plan_start(
    node_id: str, generation: int, now: datetime, *, graph: WorkflowGraph | None = None
) -> Decide:
    """Whether a delivered job runs. Running it writes nothing: the attempt is recorded with
    its result (``plan_completion`` / ``plan_retry``), and by ``plan_mark_running`` once the
    node has run for a moment — so a short node costs one write, not two.

    A job of a node that has finished is a DUPLICATE; with ``graph``, its payload is the
    ``Resend`` of that node: a worker that recorded the result and died before sending its
    children's jobs left them claimed without a job, and this delivery (its job put back
    when the lease ran out) is what sends them."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None:
            return Transition(outcome=UNKNOWN)
        if rec.generation != generation:
            return Transition(outcome=STALE)
        if rec.status.is_terminal:
            # A node cancelled with its execution has nothing to send again: the cancel
            # (or the timeout) settled the execution itself.
            resend = graph is not None and rec.status is not NodeStatus.CANCELLED
            again = _resend(graph, node_id, snap) if resend and graph is not None else None
            return Transition(outcome=DUPLICATE, payload=again)
        status = snap.execution.status
        if status in (ExecutionStatus.PAUSED, ExecutionStatus.QUEUED):
            return Transition(outcome=PARKED)
        if status is not ExecutionStatus.RUNNING:
            return Transition(
                nodes=(rec.evolve(status=NodeStatus.CANCELLED, completed_at=now),),
                outcome=DROPPED,
            )
        if rec.status is NodeStatus.WAITING:
            return Transition(
                outcome=WAKE,
                payload=StartPayload(max(rec.attempts, 1), snap.execution, dict(snap.nodes), snap),
            )
        return Transition(
            outcome=RUN,
            payload=StartPayload(rec.attempts + 1, snap.execution, dict(snap.nodes), snap),
        )

    return decide


def stands_on_recent(node_id: str) -> Callable[[Transition], bool]:
    """Which ``plan_start`` decisions may stand on what this process learned of the
    execution since its last claim (``stores.base.Recent``) without a read: running a node
    still queued there, in the job's generation. Its claim was written after every parent
    ended, so its input is final; a pause or cancel since counts in the claim's control
    epoch. Anything else (parked, dropped, a duplicate, a wake-up, a redelivery of a node
    marked running) is decided again on a read."""

    def stands(decision: Transition) -> bool:
        if decision.outcome != RUN or not isinstance(decision.payload, StartPayload):
            return False
        rec = decision.payload.nodes.get(node_id)
        return rec is not None and rec.status is NodeStatus.QUEUED

    return stands


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


def plan_suspend(
    node_id: str,
    generation: int,
    *,
    attempt: int,
    started_at: datetime,
    wake_at: datetime | None,
    wait: str,
    accept_waiting: bool = False,
) -> Decide:
    """A built-in node suspends: WAITING until ``wake_at`` or an event (``wait`` says which).
    Outcome RUN when recorded; DUPLICATE when the node moved on (another delivery got there
    first, or with ``accept_waiting`` False, it already waits); DROPPED when the execution
    ended meanwhile."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation or rec.status.is_terminal:
            return Transition(outcome=DUPLICATE)
        if rec.status is NodeStatus.WAITING and not accept_waiting:
            return Transition(outcome=DUPLICATE, payload=rec)
        if snap.execution.status.is_terminal:
            return Transition(outcome=DROPPED)
        waiting = rec.evolve(
            status=NodeStatus.WAITING,
            attempts=max(rec.attempts, attempt),
            started_at=rec.started_at or started_at,
            wake_at=wake_at,
            wait=wait,
        )
        return Transition(nodes=(waiting,), outcome=RUN)

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


def plan_defer(node_id: str, generation: int, attempt: int, now: datetime) -> Decide:
    """An attempt that does not count (the executor said its service is rate limited) but
    was recorded as running: the node is queued again with the attempts it had before."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status is not NodeStatus.RUNNING
            or rec.attempts != attempt
        ):
            return Transition(outcome=DUPLICATE)
        queued = rec.evolve(status=NodeStatus.QUEUED, attempts=attempt - 1, queued_at=now)
        return Transition(nodes=(queued,), outcome=RUN)

    return decide


def plan_completion(
    graph: WorkflowGraph,
    node_id: str,
    generation: int,
    outcome: NodeOutcome,
    now: datetime,
    *,
    spans: tuple[SpanRecord, ...] = (),
    dlq: DlqRecord | None = None,
) -> Decide:
    """Record a node's result, claim the children it made ready, settle the execution."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation:
            return Transition(outcome=DUPLICATE)
        if rec.status.is_terminal:
            # Already recorded — by another delivery, or by our own write whose answer was
            # lost. Whoever recorded it may not have sent the jobs of the children it
            # claimed: name them again (sending an existing job again is a no-op).
            return Transition(outcome=DUPLICATE, payload=_resend(graph, node_id, snap))

        done = rec.evolve(
            status=outcome.status,
            output=outcome.output,
            error=outcome.error,
            next_nodes=outcome.next_nodes,
            attempts=max(rec.attempts, outcome.attempt),
            started_at=outcome.started_at or rec.started_at,
            skipped=outcome.status is NodeStatus.SKIPPED,
            completed_at=now,
            wake_at=None,
        )
        failed_for_good = outcome.status is NodeStatus.FAILED
        dead = (dlq,) if failed_for_good and dlq is not None else ()
        execution = snap.execution
        if execution.status not in (ExecutionStatus.RUNNING, ExecutionStatus.PAUSED):
            return Transition(nodes=(done,), outcome=RECORDED, spans=spans, dlq=dead)

        if failed_for_good:
            failed = evolve_execution(
                execution,
                status=ExecutionStatus.FAILED,
                completed_at=now,
                error=f"node {node_id!r} failed: {outcome.error}",
            )
            return Transition(
                nodes=(done,), execution=failed, outcome=SETTLED_FAILED, spans=spans, dlq=dead
            )

        nodes = dict(snap.nodes)
        nodes[node_id] = done
        changed: dict[str, NodeRecord] = {node_id: done}
        claimed = _claim_ready(graph, nodes, changed, graph.children[node_id], now)
        settled, result = _settle(graph, execution, nodes, now)
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


def plan_event(
    graph: WorkflowGraph,
    node_id: str,
    generation: int,
    token: str,
    outcome: NodeOutcome,
    now: datetime,
) -> Decide:
    """Complete a waiting node with the data given with its resume token — only while the
    node still waits for that token (REFUSED with "not_waiting" otherwise). Its span, the
    wait from its start to now, is written with it."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status is not NodeStatus.WAITING
            or rec.wait is None
        ):
            return _refuse("not_waiting")
        info = _json.loads(rec.wait)
        if not isinstance(info, dict) or info.get("token") != token:
            return _refuse("not_waiting")
        if snap.execution.status.is_terminal:
            return _refuse("not_waiting")
        waited = spans.node_span(
            snap.execution.execution_id,
            node_id,
            node=graph.nodes.get(node_id),
            generation=generation,
            attempt=max(rec.attempts, 1),
            status=outcome.status.value,
            started_at=rec.started_at or now,
            ended_at=now,
            workflow_version=snap.execution.workflow_version,
            error=outcome.error,
            extra=spans.wait_attributes(spans.wait_kind(rec), resumed=True),
        )
        return plan_completion(graph, node_id, generation, outcome, now, spans=(waited,))(snap)

    return decide


def _pending(rec: NodeRecord | None) -> bool:
    return rec is None or rec.status is NodeStatus.PENDING


def _claim_ready(
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
        if not _pending(prev):
            continue
        parents = [nodes.get(p) for p in graph.parents[child]]
        if any(p is None or not p.status.is_terminal for p in parents):
            continue
        if any(p is not None and p.status is NodeStatus.FAILED for p in parents):
            continue
        gen = prev.generation if prev is not None else 0
        if any(_edge_active(p, child) for p in parents if p is not None):
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


_IN_FLIGHT = (NodeStatus.QUEUED, NodeStatus.RUNNING, NodeStatus.WAITING)


def _settle(
    graph: WorkflowGraph, execution: ExecutionRecord, nodes: dict[str, NodeRecord], now: datetime
) -> tuple[ExecutionRecord | None, str]:
    """Completed when every node is terminal and none failed; failed when nothing is in
    flight and a node failed (only after a partial retry); otherwise still running."""
    records = [nodes.get(n) for n in graph.order]
    if all(r is not None and r.status.is_terminal for r in records):
        failed = [r for r in records if r is not None and r.status is NodeStatus.FAILED]
        if not failed:
            done = evolve_execution(
                execution, status=ExecutionStatus.COMPLETED, completed_at=now, error=None
            )
            return done, SETTLED_COMPLETED
    if any(r is not None and r.status in _IN_FLIGHT for r in records):
        return None, RECORDED
    failed = [r for r in records if r is not None and r.status is NodeStatus.FAILED]
    if not failed:
        return None, RECORDED
    error = f"node {failed[0].node_id!r} failed: {failed[0].error}"
    return (
        evolve_execution(execution, status=ExecutionStatus.FAILED, completed_at=now, error=error),
        SETTLED_FAILED,
    )


# Control: pause, resume, cancel, retry -------------------------------------------------


def _refuse(why: str) -> Transition:
    return Transition(outcome=REFUSED, payload=why)


def plan_pause() -> Decide:
    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is ExecutionStatus.PAUSED:
            return Transition(outcome=DUPLICATE)
        if status is not ExecutionStatus.RUNNING:
            return _refuse(f"it is {status.value}; only a running execution can be paused")
        paused = evolve_execution(snap.execution, status=ExecutionStatus.PAUSED)
        return Transition(execution=paused, outcome=CHANGED)

    return decide


def plan_resume(now: datetime) -> Decide:
    """Paused -> running. Payload: the ``Wakeup`` jobs to send — every queued or running
    node (parked jobs were dropped; an existing job makes the send a no-op) and every
    waiting node, at its ``wake_at`` (never early)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is ExecutionStatus.RUNNING:
            return Transition(outcome=DUPLICATE, payload=())
        if status is not ExecutionStatus.PAUSED:
            return _refuse(f"it is {status.value}; only a paused execution can be resumed")
        wakeups = tuple(
            Wakeup(r.node_id, r.generation, r.wake_at if r.wake_at and r.wake_at > now else None)
            for r in snap.nodes.values()
            if r.status in _IN_FLIGHT
        )
        running = evolve_execution(snap.execution, status=ExecutionStatus.RUNNING)
        return Transition(execution=running, outcome=CHANGED, payload=wakeups)

    return decide


def plan_cancel(now: datetime, reason: str, graph: WorkflowGraph | None = None) -> Decide:
    """Cancel a queued, running or paused execution: it and every node not finished are
    marked cancelled. Payload: the ids of nodes that were in flight (their workers are told).
    A node that was running or waiting gets its span, ending now (``graph`` names it)."""
    return _plan_stop(now, reason, ExecutionStatus.CANCELLED, graph)


def plan_timeout(now: datetime, reason: str, graph: WorkflowGraph | None = None) -> Decide:
    """An execution ran past its timeout: it fails (``reason`` says so) and every node not
    finished is cancelled. A finished execution is left alone (DUPLICATE)."""
    return _plan_stop(now, reason, ExecutionStatus.FAILED, graph)


def _plan_stop(
    now: datetime, reason: str, final: ExecutionStatus, graph: WorkflowGraph | None
) -> Decide:
    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is final or (final is ExecutionStatus.FAILED and status.is_terminal):
            return Transition(outcome=DUPLICATE, payload=())
        if status.is_terminal:
            return _refuse(f"it is {status.value} already")
        stopped = tuple(
            r.evolve(status=NodeStatus.CANCELLED, completed_at=now, error=reason, wake_at=None)
            for r in snap.nodes.values()
            if not r.status.is_terminal and r.status is not NodeStatus.PENDING
        )
        ended = evolve_execution(snap.execution, status=final, completed_at=now, error=reason)
        running = tuple(r.node_id for r in snap.nodes.values() if r.status in _IN_FLIGHT)
        traced = tuple(
            span
            for r in snap.nodes.values()
            if (
                span := spans.stopped_span(
                    snap.execution.execution_id,
                    r,
                    node=graph.nodes.get(r.node_id) if graph is not None else None,
                    workflow_version=snap.execution.workflow_version,
                    status=NodeStatus.CANCELLED.value,
                    error=reason,
                    now=now,
                )
            )
            is not None
        )
        return Transition(
            nodes=stopped, execution=ended, outcome=CHANGED, payload=running, spans=traced
        )

    return decide


def plan_retry_execution(
    graph: WorkflowGraph, now: datetime, *, only: frozenset[str] | None = None
) -> Decide:
    """Retry a failed execution from its failures: failed and cancelled nodes (or only
    those in ``only``) run again under a new generation, nodes downstream of them that did
    not succeed become pending again, results that succeeded are kept. Payload: the
    ``Wakeup`` jobs to send."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is not ExecutionStatus.FAILED:
            return _refuse(f"it is {status.value}; only a failed execution can be retried")
        nodes = dict(snap.nodes)
        redo = [
            n
            for n in graph.order
            if (r := nodes.get(n)) is not None
            and r.status in (NodeStatus.FAILED, NodeStatus.CANCELLED)
            and (only is None or n in only)
        ]
        if not redo:
            return _refuse("it has no failed node to run again")
        changed: dict[str, NodeRecord] = {}
        for n in redo:
            old = nodes[n]
            fresh = NodeRecord(
                node_id=n, status=NodeStatus.QUEUED, generation=old.generation + 1, queued_at=now
            )
            nodes[n] = changed[n] = fresh
        for n in _descendants(graph, redo):
            below = nodes.get(n)
            if below is not None and below.status is not NodeStatus.SUCCEEDED and n not in changed:
                reset = NodeRecord(
                    node_id=n, status=NodeStatus.PENDING, generation=below.generation + 1
                )
                nodes[n] = changed[n] = reset
        # Nodes left pending when the execution failed (their parents finished after it).
        waiting_parents = [n for n in graph.order if _pending(nodes.get(n))]
        claimed = _claim_ready(graph, nodes, changed, waiting_parents, now)
        running = evolve_execution(
            snap.execution, status=ExecutionStatus.RUNNING, completed_at=None, error=None
        )
        jobs = tuple(Wakeup(n, nodes[n].generation) for n in [*redo, *claimed])
        return Transition(
            nodes=tuple(changed.values()), execution=running, outcome=CHANGED, payload=jobs
        )

    return decide


def _descendants(graph: WorkflowGraph, roots: list[str]) -> list[str]:
    seen: set[str] = set()
    todo = [c for r in roots for c in graph.children[r]]
    while todo:
        n = todo.pop()
        if n not in seen:
            seen.add(n)
            todo.extend(graph.children[n])
    return [n for n in graph.order if n in seen]


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
