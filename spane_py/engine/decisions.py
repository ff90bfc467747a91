"""What the planner is told and what it decides: one type per decision.

A ``decide`` function (``spane_py.engine.planner``) returns a ``Transition``: what to write,
and its ``decision`` — one of the types below, which the store hands back untouched and
never stores. Callers ``match`` on the type; each ``plan_*`` function decides among a few
of them (the ``...Decision`` unions), and ``start_decision`` and ``completion_decision``
narrow a transition's decision to its union, so that a ``match`` over it is checked for
exhaustiveness by mypy. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from spane_py.records import Decision, ExecutionRecord, ExecutionSnapshot, NodeRecord, Transition
from spane_py.state import ExecutionStatus, NodeStatus


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
    """What a duplicate's caller sends again: jobs of claimed children (a no-op where they
    exist) and the settled announcement."""

    jobs: tuple[tuple[str, int], ...]  # (node id, generation)
    settled: bool
    priority: int | None = None  # the execution's


@dataclass(frozen=True, slots=True)
class Wakeup:
    """A job to send after a control transition: ``due`` None means now."""

    node_id: str
    generation: int
    due: datetime | None = None


# Starting a node (plan_start) ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Started(Decision):
    """A start that goes on (``Run`` or ``Wake``): what the decision saw, for the attempt."""

    attempt: int
    execution: ExecutionRecord
    nodes: dict[str, NodeRecord]
    snapshot: ExecutionSnapshot  # what the decision saw: the completion may start from it


@dataclass(frozen=True, slots=True)
class Run(Started):
    """The node runs: attempt ``attempt``. Nothing is written (the attempt is recorded with
    its result, or by ``plan_mark_running``)."""


@dataclass(frozen=True, slots=True)
class Wake(Started):
    """A waiting node's job arrived: the runner's built-ins check what it waits for."""


@dataclass(frozen=True, slots=True)
class Duplicate(Decision):
    """Done already (the node finished, the record moved on, the execution is already so).
    ``resend``: for a node that finished, what it started, to send again (None: nothing)."""

    resend: Resend | None = None


@dataclass(frozen=True, slots=True)
class Stale(Decision):
    """The job belongs to an older run generation of the node."""


@dataclass(frozen=True, slots=True)
class Parked(Decision):
    """The execution is paused (or not admitted yet): the node stays queued until resume."""


@dataclass(frozen=True, slots=True)
class Dropped(Decision):
    """The execution ended: the node is marked cancelled (where the transition says so)."""


@dataclass(frozen=True, slots=True)
class Unknown(Decision):
    """The node was never queued for this execution."""


# Recording an attempt (mark running, suspend, retry, defer) ---------------------------


@dataclass(frozen=True, slots=True)
class Marked(Decision):
    """The attempt is recorded as running."""


@dataclass(frozen=True, slots=True)
class Suspended(Decision):
    """The node is recorded as waiting."""


@dataclass(frozen=True, slots=True)
class Requeued(Decision):
    """The node is queued again: a retry, or an attempt that did not count."""


# Completing a node (plan_completion, plan_event) ------------------------------------


@dataclass(frozen=True, slots=True)
class Recorded(Decision):
    """The node's result is recorded; the execution goes on (or had ended already)."""


@dataclass(frozen=True, slots=True)
class Settled(Decision):
    """The node's result is recorded and its execution settled: ``status`` is COMPLETED or
    FAILED, the transition's ``execution`` the settled record."""

    status: ExecutionStatus


# Control (pause, resume, cancel, timeout, retry) ------------------------------------


@dataclass(frozen=True, slots=True)
class Refused(Decision):
    """The action does not apply to the execution as it is: ``why``, for the caller."""

    why: str


@dataclass(frozen=True, slots=True)
class Paused(Decision):
    """Running -> paused."""


@dataclass(frozen=True, slots=True)
class Resumed(Decision):
    """Paused -> running; ``wakeups``: the jobs to send."""

    wakeups: tuple[Wakeup, ...]


@dataclass(frozen=True, slots=True)
class Stopped(Decision):
    """Cancelled, or failed by its timeout: ``in_flight``, the nodes that were queued,
    running or waiting (their workers are told)."""

    in_flight: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Retried(Decision):
    """Failed -> running again; ``wakeups``: the jobs to send."""

    wakeups: tuple[Wakeup, ...]


# What each plan decides among ----------------------------------------------------------

StartDecision = Run | Wake | Duplicate | Stale | Parked | Dropped | Unknown
MarkDecision = Marked | Duplicate
SuspendDecision = Suspended | Duplicate | Dropped
RetryDecision = Requeued | Duplicate | Dropped
DeferDecision = Requeued | Duplicate
CompletionDecision = Recorded | Settled | Duplicate
EventDecision = Recorded | Settled | Duplicate | Refused
PauseDecision = Paused | Duplicate | Refused
ResumeDecision = Resumed | Duplicate | Refused
StopDecision = Stopped | Duplicate | Refused
RetryExecutionDecision = Retried | Refused


def start_decision(done: Transition) -> StartDecision:
    """``plan_start``'s decision, typed for an exhaustive ``match``."""
    decision = done.decision
    if isinstance(decision, Run | Wake | Duplicate | Stale | Parked | Dropped | Unknown):
        return decision
    raise TypeError(f"not a start decision: {decision!r}")


def completion_decision(done: Transition) -> EventDecision:
    """``plan_completion``'s or ``plan_event``'s decision, typed for an exhaustive
    ``match``."""
    decision = done.decision
    if isinstance(decision, Recorded | Settled | Duplicate | Refused):
        return decision
    raise TypeError(f"not a completion decision: {decision!r}")
