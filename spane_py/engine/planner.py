"""The planner: pure decisions about an execution. No I/O, no clock, no randomness.

Each ``plan_*`` function returns a ``decide`` callable for ``ExecutionStore.transition``:
given a snapshot of the execution it returns the ``Transition`` to write, and its decision,
one type each (``engine/decisions.py``: ``Run``, ``Duplicate``, ``Settled``, ...).

This module holds the decisions about one node (start, running mark, suspend, retry,
defer, completion, event) and names the rest of the planner: the decisions about a whole
execution (``engine/execution_plans.py``: pause, resume, cancel, timeout, retry) and the
graph's rules they share (``engine/dataflow.py``). Rules (DESIGN.md, "Execution model"):

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
from datetime import datetime

from spane_py import _json
from spane_py.definitions.graph import WorkflowGraph
from spane_py.engine import spans
from spane_py.engine.dataflow import (
    claim_ready,
    initial_nodes,
    node_input,
    parent_results,
    resend,
    settle,
)
from spane_py.engine.decisions import (
    CompletionDecision,
    Dropped,
    Duplicate,
    Marked,
    NodeOutcome,
    Parked,
    Recorded,
    Refused,
    Requeued,
    Resend,
    Run,
    Settled,
    Stale,
    Suspended,
    Unknown,
    Wake,
    Wakeup,
)
from spane_py.engine.execution_plans import (
    plan_cancel,
    plan_pause,
    plan_resume,
    plan_retry_execution,
    plan_timeout,
)
from spane_py.records import (
    Decide,
    Decision,
    DlqRecord,
    ExecutionSnapshot,
    NodeRecord,
    SpanRecord,
    Transition,
    evolve_execution,
)
from spane_py.state import ExecutionStatus, NodeStatus

__all__ = [
    "Decision",
    "NodeOutcome",
    "Resend",
    "Wakeup",
    "initial_nodes",
    "node_input",
    "parent_results",
    "plan_cancel",
    "plan_completion",
    "plan_defer",
    "plan_event",
    "plan_mark_running",
    "plan_pause",
    "plan_resume",
    "plan_retry",
    "plan_retry_execution",
    "plan_start",
    "plan_suspend",
    "plan_timeout",
    "stands_on_recent",
]


def plan_start(
    node_id: str, generation: int, now: datetime, *, graph: WorkflowGraph | None = None
) -> Decide:
    """Whether a delivered job runs. Running it writes nothing: the attempt is recorded with
    its result (``plan_completion`` / ``plan_retry``), and by ``plan_mark_running`` once the
    node has run for a moment — so a short node costs one write, not two.

    Decides ``Run``, ``Wake`` (a waiting node), ``Parked`` (a paused execution),
    ``Dropped`` (an ended one: the node is cancelled), ``Stale``, ``Unknown`` or
    ``Duplicate``. A job of a node that has finished is a ``Duplicate``; with ``graph``, it
    carries the ``Resend`` of that node: a worker that recorded the result and died before
    sending its children's jobs left them claimed without a job, and this delivery (its job
    put back when the lease ran out) is what sends them."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None:
            return Transition(decision=Unknown())
        if rec.generation != generation:
            return Transition(decision=Stale())
        if rec.status.is_terminal:
            # A node cancelled with its execution has nothing to send again: the cancel
            # (or the timeout) settled the execution itself.
            sends = graph is not None and rec.status is not NodeStatus.CANCELLED
            again = resend(graph, node_id, snap) if sends and graph is not None else None
            return Transition(decision=Duplicate(again))
        status = snap.execution.status
        if status in (ExecutionStatus.PAUSED, ExecutionStatus.QUEUED):
            return Transition(decision=Parked())
        if status is not ExecutionStatus.RUNNING:
            return Transition(
                nodes=(rec.evolve(status=NodeStatus.CANCELLED, completed_at=now),),
                decision=Dropped(),
            )
        if rec.status is NodeStatus.WAITING:
            wake = Wake(max(rec.attempts, 1), snap.execution, dict(snap.nodes), snap)
            return Transition(decision=wake)
        return Transition(decision=Run(rec.attempts + 1, snap.execution, dict(snap.nodes), snap))

    return decide


def stands_on_recent(node_id: str) -> Callable[[Transition], bool]:
    """Which ``plan_start`` decisions may stand on what this process learned of the
    execution since its last claim (``stores.base.Recent``) without a read: running a node
    still queued there, in the job's generation. Its claim was written after every parent
    ended, so its input is final; a pause or cancel since counts in the claim's control
    epoch. Anything else (parked, dropped, a duplicate, a wake-up, a redelivery of a node
    marked running) is decided again on a read."""

    def stands(done: Transition) -> bool:
        if not isinstance(done.decision, Run):
            return False
        rec = done.decision.nodes.get(node_id)
        return rec is not None and rec.status is NodeStatus.QUEUED

    return stands


def plan_mark_running(node_id: str, generation: int, attempt: int, started_at: datetime) -> Decide:
    """Record that attempt ``attempt`` of a node is under way (``Marked``), when it has not
    finished (``Duplicate``)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status.is_terminal
            or rec.attempts >= attempt
            or snap.execution.status is not ExecutionStatus.RUNNING
        ):
            return Transition(decision=Duplicate())
        running = rec.evolve(status=NodeStatus.RUNNING, attempts=attempt, started_at=started_at)
        return Transition(nodes=(running,), decision=Marked())

    return decide


def plan_suspend(
    node_id: str,
    generation: int,
    *,
    attempt: int,
    started_at: datetime,
    wake_at: datetime | None,
    wait: str,
    wait_child: str | None = None,
    accept_waiting: bool = False,
) -> Decide:
    """A built-in node suspends: WAITING until ``wake_at`` or an event (``wait`` says which).
    ``Suspended`` when recorded; ``Duplicate`` when the node moved on (another delivery got
    there first, or with ``accept_waiting`` False, it already waits); ``Dropped`` when the
    execution ended meanwhile."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation or rec.status.is_terminal:
            return Transition(decision=Duplicate())
        if rec.status is NodeStatus.WAITING and not accept_waiting:
            return Transition(decision=Duplicate())
        if snap.execution.status.is_terminal:
            return Transition(decision=Dropped())
        waiting = rec.evolve(
            status=NodeStatus.WAITING,
            attempts=max(rec.attempts, attempt),
            started_at=rec.started_at or started_at,
            wake_at=wake_at,
            wait=wait,
            wait_child=wait_child,
        )
        return Transition(nodes=(waiting,), decision=Suspended())

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
    """A failed attempt that will be retried: the node goes back to queued (``Requeued``),
    the attempt counted (and traced with ``spans``); cancelled (``Dropped``) when the
    execution ended."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation or rec.status.is_terminal:
            return Transition(decision=Duplicate())
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
            return Transition(nodes=(cancelled,), spans=spans, decision=Dropped())
        queued = rec.evolve(
            status=NodeStatus.QUEUED,
            error=error,
            queued_at=now,
            attempts=attempts,
            started_at=started,
        )
        return Transition(nodes=(queued,), spans=spans, decision=Requeued())

    return decide


def plan_defer(node_id: str, generation: int, attempt: int, now: datetime) -> Decide:
    """An attempt that does not count (the executor said its service is rate limited) but
    was recorded as running: the node is queued again with the attempts it had before
    (``Requeued``)."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status is not NodeStatus.RUNNING
            or rec.attempts != attempt
        ):
            return Transition(decision=Duplicate())
        queued = rec.evolve(status=NodeStatus.QUEUED, attempts=attempt - 1, queued_at=now)
        return Transition(nodes=(queued,), decision=Requeued())

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
    """Record a node's result, claim the children it made ready, settle the execution:
    ``Settled`` when it settles, ``Recorded`` otherwise, ``Duplicate`` (with the ``Resend``
    of a node that finished) when the result was recorded before."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if rec is None or rec.generation != generation:
            return Transition(decision=Duplicate())
        if rec.status.is_terminal:
            # Already recorded — by another delivery, or by our own write whose answer was
            # lost. Whoever recorded it may not have sent the jobs of the children it
            # claimed: name them again (sending an existing job again is a no-op).
            return Transition(decision=Duplicate(resend(graph, node_id, snap)))

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
            return Transition(nodes=(done,), spans=spans, dlq=dead, decision=Recorded())

        if failed_for_good:
            failed = evolve_execution(
                execution,
                status=ExecutionStatus.FAILED,
                completed_at=now,
                error=f"node {node_id!r} failed: {outcome.error}",
            )
            return Transition(
                nodes=(done,),
                execution=failed,
                spans=spans,
                dlq=dead,
                decision=Settled(ExecutionStatus.FAILED),
            )

        nodes = dict(snap.nodes)
        nodes[node_id] = done
        changed: dict[str, NodeRecord] = {node_id: done}
        claimed = claim_ready(graph, nodes, changed, graph.children[node_id], now)
        settled = settle(graph, execution, nodes, now)
        decision: CompletionDecision = Recorded() if settled is None else Settled(settled.status)
        # A paused execution claims its ready children but sends no jobs: resume does.
        enqueue = tuple(claimed) if execution.status is ExecutionStatus.RUNNING else ()
        return Transition(
            nodes=tuple(changed.values()),
            execution=settled,
            enqueue=enqueue,
            spans=spans,
            decision=decision,
        )

    return decide


_NOT_WAITING = Transition(decision=Refused("not_waiting"))


def plan_event(
    graph: WorkflowGraph,
    node_id: str,
    generation: int,
    token: str,
    outcome: NodeOutcome,
    now: datetime,
) -> Decide:
    """Complete a waiting node with the data given with its resume token — only while the
    node still waits for that token (``Refused`` with "not_waiting" otherwise). Its span, the
    wait from its start to now, is written with it."""

    def decide(snap: ExecutionSnapshot) -> Transition:
        rec = snap.nodes.get(node_id)
        if (
            rec is None
            or rec.generation != generation
            or rec.status is not NodeStatus.WAITING
            or rec.wait is None
        ):
            return _NOT_WAITING
        info = _json.loads(rec.wait)
        if not isinstance(info, dict) or info.get("token") != token:
            return _NOT_WAITING
        if snap.execution.status.is_terminal:
            return _NOT_WAITING
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
