"""The planner's decisions about a whole execution: pause, resume, cancel, timeout and
retry (``engine/control.py`` applies them). Each ``plan_*`` returns a ``decide`` callable
for ``ExecutionStore.transition``, like the node decisions in ``planner``. Pure: no I/O, no
clock.
"""

from __future__ import annotations

from datetime import datetime

from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import spans
from spane_py.engine.dataflow import IN_FLIGHT, claim_ready, descendants, pending
from spane_py.engine.decisions import (
    Duplicate,
    Paused,
    Refused,
    Resumed,
    Retried,
    Stopped,
    Wakeup,
)
from spane_py.records import (
    Decide,
    ExecutionSnapshot,
    NodeRecord,
    Transition,
    evolve_execution,
)
from spane_py.state import ExecutionStatus, NodeStatus


def refuse(why: str) -> Transition:
    return Transition(decision=Refused(why))


def plan_pause() -> Decide:
    """Running -> paused (``Paused``; ``Duplicate`` when paused already)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is ExecutionStatus.PAUSED:
            return Transition(decision=Duplicate())
        if status is not ExecutionStatus.RUNNING:
            return refuse(f"it is {status.value}; only a running execution can be paused")
        paused = evolve_execution(snap.execution, status=ExecutionStatus.PAUSED)
        return Transition(execution=paused, decision=Paused())

    return decide


def plan_resume(now: datetime) -> Decide:
    """Paused -> running. ``Resumed`` with the ``Wakeup`` jobs to send — every queued or
    running node (parked jobs were dropped; an existing job makes the send a no-op) and
    every waiting node, at its ``wake_at`` (never early)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is ExecutionStatus.RUNNING:
            return Transition(decision=Duplicate())
        if status is not ExecutionStatus.PAUSED:
            return refuse(f"it is {status.value}; only a paused execution can be resumed")
        wakeups = tuple(
            Wakeup(r.node_id, r.generation, r.wake_at if r.wake_at and r.wake_at > now else None)
            for r in snap.nodes.values()
            if r.status in IN_FLIGHT
        )
        running = evolve_execution(snap.execution, status=ExecutionStatus.RUNNING)
        return Transition(execution=running, decision=Resumed(wakeups))

    return decide


def plan_cancel(now: datetime, reason: str, graph: WorkflowGraph | None = None) -> Decide:
    """Cancel a queued, running or paused execution: it and every node not finished are
    marked cancelled. ``Stopped`` names the nodes that were in flight (their workers are
    told). A node that was running or waiting gets its span, ending now (``graph`` names
    it)."""
    return _plan_stop(now, reason, ExecutionStatus.CANCELLED, graph)


def plan_timeout(now: datetime, reason: str, graph: WorkflowGraph | None = None) -> Decide:
    """An execution ran past its timeout: it fails (``reason`` says so) and every node not
    finished is cancelled (``Stopped``). A finished execution is left alone
    (``Duplicate``)."""
    return _plan_stop(now, reason, ExecutionStatus.FAILED, graph)


def _plan_stop(
    now: datetime, reason: str, final: ExecutionStatus, graph: WorkflowGraph | None
) -> Decide:
    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is final or (final is ExecutionStatus.FAILED and status.is_terminal):
            return Transition(decision=Duplicate())
        if status.is_terminal:
            return refuse(f"it is {status.value} already")
        stopped = tuple(
            r.evolve(status=NodeStatus.CANCELLED, completed_at=now, error=reason, wake_at=None)
            for r in snap.nodes.values()
            if not r.status.is_terminal and r.status is not NodeStatus.PENDING
        )
        ended = evolve_execution(snap.execution, status=final, completed_at=now, error=reason)
        running = tuple(r.node_id for r in snap.nodes.values() if r.status in IN_FLIGHT)
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
        return Transition(nodes=stopped, execution=ended, spans=traced, decision=Stopped(running))

    return decide


def plan_retry_execution(
    graph: WorkflowGraph,
    now: datetime,
    *,
    only: frozenset[str] | None = None,
    queued: bool = False,
) -> Decide:
    """Retry a failed execution from its failures: failed and cancelled nodes (or only
    those in ``only``) run again under a new generation, nodes downstream of them that did
    not succeed become pending again, results that succeeded are kept. ``Retried`` with the
    ``Wakeup`` jobs to send. ``queued``: its workflow limits concurrent executions, so it
    goes back to ``queued`` instead of ``running`` and waits for admission, which sends
    the jobs of its queued nodes."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        status = snap.execution.status
        if status is not ExecutionStatus.FAILED:
            return refuse(f"it is {status.value}; only a failed execution can be retried")
        nodes = dict(snap.nodes)
        redo = [
            n
            for n in graph.order
            if (r := nodes.get(n)) is not None
            and r.status in (NodeStatus.FAILED, NodeStatus.CANCELLED)
            and (only is None or n in only)
        ]
        if not redo:
            return refuse("it has no failed node to run again")
        changed: dict[str, NodeRecord] = {}
        for n in redo:
            old = nodes[n]
            fresh = NodeRecord(
                node_id=n, status=NodeStatus.QUEUED, generation=old.generation + 1, queued_at=now
            )
            nodes[n] = changed[n] = fresh
        for n in descendants(graph, redo):
            below = nodes.get(n)
            if below is not None and below.status is not NodeStatus.SUCCEEDED and n not in changed:
                reset = NodeRecord(
                    node_id=n, status=NodeStatus.PENDING, generation=below.generation + 1
                )
                nodes[n] = changed[n] = reset
        # Nodes left pending when the execution failed (their parents finished after it).
        waiting_parents = [n for n in graph.order if pending(nodes.get(n))]
        claimed = claim_ready(graph, nodes, changed, waiting_parents, now)
        again = ExecutionStatus.QUEUED if queued else ExecutionStatus.RUNNING
        running = evolve_execution(
            snap.execution, status=again, completed_at=None, error=None, output=None
        )
        jobs = tuple(Wakeup(n, nodes[n].generation) for n in [*redo, *claimed])
        return Transition(nodes=tuple(changed.values()), execution=running, decision=Retried(jobs))

    return decide
