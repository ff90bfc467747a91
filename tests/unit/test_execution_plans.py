"""The planner's decisions about a whole execution (pause, resume, cancel, timeout, retry)
and the typed decisions they and the node decisions carry, driven by hand like
test_planner.py (no store, no I/O)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import assert_never

import pytest

from spane_py.engine import decisions, planner
from spane_py.engine.decisions import (
    Duplicate,
    Paused,
    Refused,
    Resend,
    Resumed,
    Retried,
    Stopped,
    Wakeup,
)
from spane_py.records import Decide, Decision, Transition
from spane_py.state import ExecutionStatus, NodeStatus

from .test_planner import Run, build, failed, later, ok


def _set(run: Run, status: ExecutionStatus) -> None:
    run.execution = replace(run.execution, status=status)


def test_pause_then_pause_again_then_refused_once_ended() -> None:
    run = Run(build({"a": []}))
    t = run.apply(planner.plan_pause())
    assert t.decision == Paused()
    assert run.execution.status is ExecutionStatus.PAUSED
    assert run.apply(planner.plan_pause()).decision == Duplicate()
    _set(run, ExecutionStatus.COMPLETED)
    refused = run.apply(planner.plan_pause())
    assert refused.decision == Refused("it is completed; only a running execution can be paused")
    assert refused.is_noop


def test_resume_names_the_jobs_to_send_a_waiting_node_at_its_due_time() -> None:
    run = Run(build({"a": ["b"], "b": [], "w": []}))
    run.nodes["w"] = replace(
        run.nodes["w"], status=NodeStatus.WAITING, wake_at=later(60), wait='{"kind":"timer"}'
    )
    assert run.apply(planner.plan_resume(later())).decision == Duplicate()  # running
    _set(run, ExecutionStatus.PAUSED)
    t = run.apply(planner.plan_resume(later()))
    assert t.decision == Resumed((Wakeup("a", 0), Wakeup("w", 0, later(60))))
    assert run.execution.status is ExecutionStatus.RUNNING
    _set(run, ExecutionStatus.FAILED)
    assert isinstance(run.apply(planner.plan_resume(later())).decision, Refused)


@pytest.mark.parametrize("plan", [planner.plan_cancel, planner.plan_timeout])
def test_stopping_names_the_nodes_in_flight(plan: Callable[[datetime, str], Decide]) -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.start("b")
    run.apply(planner.plan_mark_running("b", 0, 1, later()))
    t = run.apply(plan(later(5), "why"))
    assert t.decision == Stopped(("b", "c"))
    assert {run.status("b"), run.status("c")} == {NodeStatus.CANCELLED}
    assert run.apply(plan(later(6), "again")).decision == Duplicate()


def test_a_cancel_of_an_ended_execution_is_refused_and_its_timeout_a_duplicate() -> None:
    run = Run(build({"a": []}))
    run.run("a", ok())
    assert run.execution.status is ExecutionStatus.COMPLETED
    refused = run.apply(planner.plan_cancel(later(), "late"))
    assert refused.decision == Refused("it is completed already")
    assert run.apply(planner.plan_timeout(later(), "late")).decision == Duplicate()


def test_retry_execution_names_the_jobs_of_the_failed_nodes_under_a_new_generation() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    refused = run.apply(planner.plan_retry_execution(run.graph, later()))
    assert refused.decision == Refused("it is running; only a failed execution can be retried")
    run.run("a", failed())
    t = run.apply(planner.plan_retry_execution(run.graph, later(3)))
    assert t.decision == Retried((Wakeup("a", 1),))
    assert run.execution.status is ExecutionStatus.RUNNING


def test_a_retry_under_a_concurrency_limit_waits_queued_for_admission() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", failed())
    t = run.apply(planner.plan_retry_execution(run.graph, later(3), queued=True))
    assert t.decision == Retried((Wakeup("a", 1),))
    assert run.execution.status is ExecutionStatus.QUEUED
    assert run.status("a") is NodeStatus.QUEUED  # its job goes out once it is admitted
    assert run.execution.error is None


def test_a_duplicate_start_with_the_graph_says_what_to_send_again() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    t = run.apply(planner.plan_start("a", 0, later(), graph=run.graph))
    assert t.decision == Duplicate(Resend((("b", 0), ("c", 0)), settled=False))
    assert run.apply(planner.plan_start("a", 0, later())).decision == Duplicate()


def test_a_wake_is_not_a_run_and_does_not_stand_on_a_recent_snapshot() -> None:
    run = Run(build({"a": []}))
    run.nodes["a"] = replace(run.nodes["a"], status=NodeStatus.WAITING, attempts=1)
    t = run.start("a")
    assert isinstance(t.decision, decisions.Wake)
    assert not isinstance(t.decision, decisions.Run)
    assert t.decision.attempt == 1
    assert not planner.stands_on_recent("a")(t)


def test_a_transition_without_a_decision_carries_the_bare_base() -> None:
    assert Transition().decision == Decision()
    with pytest.raises(TypeError):
        decisions.start_decision(Transition())
    with pytest.raises(TypeError):
        decisions.completion_decision(Transition(decision=Paused()))


def test_a_start_decision_matches_exhaustively() -> None:
    run = Run(build({"a": []}))

    def kind(t: Transition) -> str:
        decision = decisions.start_decision(t)
        match decision:
            case decisions.Run() | decisions.Wake():
                return "goes on"
            case (
                decisions.Duplicate()
                | decisions.Stale()
                | decisions.Parked()
                | decisions.Dropped()
                | decisions.Unknown()
            ):
                return "done"
            case _:
                assert_never(decision)

    assert kind(run.start("a")) == "goes on"
    assert kind(run.start("a", generation=2)) == "done"
