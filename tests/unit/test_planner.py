"""The pure planner, driven by hand against ExecutionSnapshot objects (no store, no I/O).

``Run`` plays the store: it keeps a snapshot, calls a ``decide`` function and applies the
``Transition`` it returns, as ``ExecutionStore.transition`` does atomically.
"""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane_py.definitions.graph import WorkflowGraph, compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.engine import decisions, planner
from spane_py.engine.planner import NodeOutcome
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import (
    Decide,
    ExecutionRecord,
    ExecutionSnapshot,
    NodeRecord,
    Transition,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def later(seconds: int = 1) -> datetime:
    return T0 + timedelta(seconds=seconds)


def build(edges: dict[str, list[str]], **top: Any) -> WorkflowGraph:
    """A graph from ``{node: [children]}``; every node listed as a key."""
    nodes = [{"id": node, "type": "t", "outputs": kids} for node, kids in edges.items()]
    return compile_workflow(parse_definition({"id": "wf", "nodes": nodes, **top}))


def ok(data: Any = None, next_nodes: list[str] | None = None) -> NodeOutcome:
    return NodeOutcome(
        NodeStatus.SUCCEEDED,
        output=json.dumps(data),
        next_nodes=tuple(next_nodes) if next_nodes is not None else None,
    )


def failed(error: str = "boom") -> NodeOutcome:
    return NodeOutcome(NodeStatus.FAILED, error=error)


def skipped() -> NodeOutcome:
    return NodeOutcome(NodeStatus.SKIPPED)


class Run:
    """One execution of ``graph``: a snapshot and the transitions applied to it."""

    def __init__(self, graph: WorkflowGraph, initial_data: Any = None) -> None:
        self.graph = graph
        self.execution = ExecutionRecord(
            execution_id="exec-1",
            workflow_id=graph.workflow_id,
            workflow_version=1,
            status=ExecutionStatus.RUNNING,
            created_at=T0,
            started_at=T0,
            initial_data=json.dumps(initial_data),
        )
        self.nodes: dict[str, NodeRecord] = {r.node_id: r for r in planner.initial_nodes(graph, T0)}
        self.enqueued: list[str] = list(graph.entry_nodes)
        self.settled: list[ExecutionStatus] = []

    @property
    def snapshot(self) -> ExecutionSnapshot:
        return ExecutionSnapshot(execution=self.execution, nodes=dict(self.nodes))

    def apply(self, decide: Decide, snapshot: ExecutionSnapshot | None = None) -> Transition:
        transition = decide(snapshot or self.snapshot)
        for record in transition.nodes:
            self.nodes[record.node_id] = record
        if transition.execution is not None:
            if transition.execution.status != self.execution.status:
                self.settled.append(transition.execution.status)
            self.execution = transition.execution
        self.enqueued.extend(transition.enqueue)
        return transition

    def status(self, node_id: str) -> NodeStatus | None:
        rec = self.nodes.get(node_id)
        return rec.status if rec is not None else None

    def start(self, node_id: str, generation: int = 0) -> Transition:
        return self.apply(planner.plan_start(node_id, generation, later()))

    def complete(self, node_id: str, outcome: NodeOutcome, generation: int = 0) -> Transition:
        return self.apply(
            planner.plan_completion(self.graph, node_id, generation, outcome, later(2))
        )

    def run(self, node_id: str, outcome: NodeOutcome) -> Transition:
        """What the runner does: decide to run, then record the attempt with its result."""
        started = self.start(node_id)
        assert isinstance(started.decision, decisions.Run), (node_id, started.decision)
        attempt = started.decision.attempt
        return self.complete(node_id, replace(outcome, attempt=attempt, started_at=later()))

    def input_of(self, node_id: str) -> Any:
        return planner.node_input(self.graph, node_id, self.execution, self.nodes)


# initial_nodes --------------------------------------------------------------------------


def test_initial_nodes_queue_entries_and_skip_unreachable_nodes() -> None:
    graph = build(
        {"a": ["b"], "b": [], "orphan": ["orphan-child"], "orphan-child": []}, entryNodeId="a"
    )
    records = {r.node_id: r for r in planner.initial_nodes(graph, T0)}
    assert set(records) == {"a", "orphan", "orphan-child"}
    assert records["a"].status is NodeStatus.QUEUED
    assert records["a"].queued_at == T0
    assert records["a"].attempts == 0
    assert records["a"].generation == 0
    for node in ("orphan", "orphan-child"):
        assert records[node].status is NodeStatus.SKIPPED
        assert records[node].skipped is True
        assert records[node].completed_at == T0
    assert "b" not in records  # pending: absent


def test_initial_nodes_queue_every_root() -> None:
    graph = build({"a": ["c"], "b": ["c"], "c": []})
    records = planner.initial_nodes(graph, T0)
    assert [(r.node_id, r.status) for r in records] == [
        ("a", NodeStatus.QUEUED),
        ("b", NodeStatus.QUEUED),
    ]


# Data passing -----------------------------------------------------------------------


def test_entry_node_gets_the_initial_data() -> None:
    run = Run(build({"a": ["b"], "b": []}), initial_data={"order": 7})
    assert run.input_of("a") == {"order": 7}


def test_entry_node_without_initial_data_gets_none() -> None:
    run = Run(build({"a": []}))
    assert run.input_of("a") is None


def test_entry_node_given_by_entry_node_id_gets_the_initial_data_even_with_parents() -> None:
    run = Run(build({"p": ["e"], "e": ["c"], "c": []}, entryNodeId="e"), initial_data=[1])
    assert run.status("p") is NodeStatus.SKIPPED
    assert run.input_of("e") == [1]
    run.run("e", ok("from-e"))
    assert run.input_of("c") == "from-e"


def test_one_parent_gives_its_data() -> None:
    run = Run(build({"a": ["b"], "b": []}), initial_data="init")
    run.run("a", ok({"rows": [1, 2]}))
    assert run.input_of("b") == {"rows": [1, 2]}


@pytest.mark.parametrize("value", [0, False, "", [], {}])
def test_falsy_data_is_passed_as_is(value: Any) -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", ok(value))
    assert run.input_of("b") == value
    assert type(run.input_of("b")) is type(value)


def test_several_parents_give_a_dict_by_parent_id() -> None:
    run = Run(build({"a": ["b", "c"], "b": ["d"], "c": ["d"], "d": []}))
    run.run("a", ok(1))
    run.run("b", ok("bee"))
    run.run("c", ok({"see": True}))
    assert run.input_of("d") == {"b": "bee", "c": {"see": True}}


def test_several_parents_only_active_ones_count() -> None:
    # x is unreachable (skipped at start); a and b feed j; a chooses not to go to j
    graph = build(
        {"s": ["a", "b"], "a": ["j", "k"], "b": ["j"], "x": ["j"], "j": [], "k": []},
        entryNodeId="s",
    )
    run = Run(graph)
    run.run("s", ok())
    run.run("a", ok("from-a", next_nodes=["k"]))
    run.run("b", ok("from-b"))
    assert run.input_of("j") == {"b": "from-b"}


# Branching and skips -------------------------------------------------------------


def test_next_nodes_skips_the_unchosen_child() -> None:
    run = Run(build({"a": ["yes", "no"], "yes": [], "no": []}))
    t = run.run("a", ok(1, next_nodes=["yes"]))
    assert t.decision == decisions.Recorded()
    assert t.enqueue == ("yes",)
    assert run.status("yes") is NodeStatus.QUEUED
    assert run.status("no") is NodeStatus.SKIPPED
    assert run.nodes["no"].skipped is True
    assert run.nodes["a"].next_nodes == ("yes",)


def test_empty_next_nodes_skips_every_child_and_completes() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    t = run.run("a", ok(next_nodes=[]))
    assert t.enqueue == ()
    assert run.status("b") is NodeStatus.SKIPPED
    assert run.status("c") is NodeStatus.SKIPPED
    assert t.decision == decisions.Settled(ExecutionStatus.COMPLETED)
    assert run.execution.status is ExecutionStatus.COMPLETED


def test_skip_cascades_recursively_in_one_completion() -> None:
    graph = build({"a": ["b", "e"], "b": ["c"], "c": ["d"], "d": [], "e": []})
    run = Run(graph)
    t = run.run("a", ok(next_nodes=["e"]))
    assert t.enqueue == ("e",)
    assert {r.node_id: r.status for r in t.nodes} == {
        "a": NodeStatus.SUCCEEDED,
        "e": NodeStatus.QUEUED,
        "b": NodeStatus.SKIPPED,
        "c": NodeStatus.SKIPPED,
        "d": NodeStatus.SKIPPED,
    }


def test_skip_cascades_through_a_diamond() -> None:
    graph = build({"a": ["b", "c", "z"], "b": ["d"], "c": ["d"], "d": ["e"], "e": [], "z": []})
    run = Run(graph)
    t = run.run("a", ok(next_nodes=["z"]))
    assert t.enqueue == ("z",)
    for node in ("b", "c", "d", "e"):
        assert run.status(node) is NodeStatus.SKIPPED, node


def test_skip_waits_for_a_pending_parent() -> None:
    # c has parents b (skipped now) and x (still running): c must wait for x
    graph = build({"s": ["a", "x"], "a": ["b", "k"], "b": ["c"], "x": ["c"], "c": [], "k": []})
    run = Run(graph)
    run.run("s", ok())
    run.start("x")
    run.run("a", ok(next_nodes=["k"]))
    assert run.status("b") is NodeStatus.SKIPPED
    assert run.status("c") is None  # still pending
    t = run.complete("x", ok("x-data"))
    assert t.enqueue == ("c",)
    assert run.input_of("c") == {"x": "x-data"}


def test_a_skipped_node_skips_its_children() -> None:
    run = Run(build({"a": ["b"], "b": ["c"], "c": []}))
    t = run.run("a", skipped())
    assert run.status("a") is NodeStatus.SKIPPED
    assert run.nodes["a"].skipped is True
    assert run.status("b") is NodeStatus.SKIPPED
    assert run.status("c") is NodeStatus.SKIPPED
    assert t.enqueue == ()
    assert t.decision == decisions.Settled(ExecutionStatus.COMPLETED)


def test_if_else_into_a_join_runs_the_join_with_the_chosen_branch() -> None:
    graph = build({"cond": ["yes", "no"], "yes": ["join"], "no": ["join"], "join": []})
    run = Run(graph, initial_data={"n": 5})
    t = run.run("cond", ok({"n": 5}, next_nodes=["yes"]))
    assert t.enqueue == ("yes",)
    assert run.status("no") is NodeStatus.SKIPPED
    assert run.status("join") is None  # yes is still to run
    t = run.run("yes", ok("big"))
    assert t.enqueue == ("join",)
    assert run.status("join") is NodeStatus.QUEUED
    assert run.input_of("join") == {"yes": "big"}
    t = run.run("join", ok("done"))
    assert t.decision == decisions.Settled(ExecutionStatus.COMPLETED)


def test_else_branch_into_a_join() -> None:
    graph = build({"cond": ["yes", "no"], "yes": ["join"], "no": ["join"], "join": []})
    run = Run(graph)
    run.run("cond", ok(next_nodes=["no"]))
    assert run.status("yes") is NodeStatus.SKIPPED
    t = run.run("no", ok("small"))
    assert t.enqueue == ("join",)
    assert run.input_of("join") == {"no": "small"}


# Fan-in and joins ---------------------------------------------------------------------


def test_fan_in_waits_for_every_parent() -> None:
    run = Run(build({"a": ["b", "c", "d"], "b": ["j"], "c": ["j"], "d": ["j"], "j": []}))
    t = run.run("a", ok())
    assert t.enqueue == ("b", "c", "d")
    assert run.run("b", ok(1)).enqueue == ()
    assert run.status("j") is None
    assert run.run("c", ok(2)).enqueue == ()
    assert run.status("j") is None
    t = run.run("d", ok(3))
    assert t.enqueue == ("j",)
    assert run.input_of("j") == {"b": 1, "c": 2, "d": 3}


def test_join_is_claimed_exactly_once_when_parents_finish_together() -> None:
    run = Run(build({"a": ["b", "c"], "b": ["j"], "c": ["j"], "j": []}))
    run.run("a", ok())
    run.start("b")
    run.start("c")
    # both running; b's completion commits first, c's completion sees b's writes
    first = run.complete("b", ok("B"))
    second = run.complete("c", ok("C"))
    assert first.enqueue == ()
    assert second.enqueue == ("j",)
    assert run.enqueued.count("j") == 1
    # a duplicate delivery of c's completion claims nothing again
    again = run.complete("c", ok("C"))
    assert isinstance(again.decision, decisions.Duplicate)
    assert again.is_noop
    assert again.enqueue == ()
    assert run.enqueued.count("j") == 1


def test_a_claimed_join_is_not_claimed_again_by_a_later_evaluation() -> None:
    # j has parents b and c; j gets claimed by c's completion; then b is completed again
    # under a new generation (a re-run): j is already in the snapshot and stays as it is.
    run = Run(build({"a": ["b", "c"], "b": ["j"], "c": ["j"], "j": []}))
    run.run("a", ok())
    run.run("b", ok())
    run.run("c", ok())
    assert run.enqueued.count("j") == 1
    run.nodes["b"] = NodeRecord("b", NodeStatus.RUNNING, generation=1, attempts=1)
    t = run.complete("b", ok("again"), generation=1)
    assert t.enqueue == ()
    assert [r.node_id for r in t.nodes] == ["b"]


# Failure ---------------------------------------------------------------------------------


def test_failure_settles_the_execution_as_failed_and_claims_nothing() -> None:
    run = Run(build({"a": ["b"], "b": ["c"], "c": []}))
    run.run("a", ok())
    t = run.run("b", failed("disk full"))
    assert t.decision == decisions.Settled(ExecutionStatus.FAILED)
    assert t.enqueue == ()
    assert [r.node_id for r in t.nodes] == ["b"]
    assert run.status("b") is NodeStatus.FAILED
    assert run.nodes["b"].error == "disk full"
    assert run.status("c") is None
    assert run.execution.status is ExecutionStatus.FAILED
    assert run.execution.completed_at == later(2)
    assert run.execution.error is not None
    assert "'b'" in run.execution.error
    assert "disk full" in run.execution.error
    assert run.settled == [ExecutionStatus.FAILED]


def test_in_flight_sibling_after_failure_is_recorded_but_enqueues_nothing() -> None:
    run = Run(build({"a": ["b", "c"], "b": ["d"], "c": ["e"], "d": [], "e": []}))
    run.run("a", ok())
    run.start("b")
    run.start("c")
    run.complete("b", failed())
    t = run.complete("c", ok("late"))
    assert t.decision == decisions.Recorded()
    assert t.enqueue == ()
    assert t.execution is None  # the status stays failed
    assert [r.node_id for r in t.nodes] == ["c"]
    assert run.status("c") is NodeStatus.SUCCEEDED
    assert run.nodes["c"].data == "late"
    assert run.status("e") is None
    assert run.execution.status is ExecutionStatus.FAILED
    assert run.settled == [ExecutionStatus.FAILED]


def test_second_failure_does_not_settle_again() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.start("b")
    run.start("c")
    run.complete("b", failed("first"))
    t = run.complete("c", failed("second"))
    assert t.decision == decisions.Recorded()
    assert t.execution is None
    assert run.status("c") is NodeStatus.FAILED
    assert run.execution.error is not None
    assert "first" in run.execution.error
    assert run.settled == [ExecutionStatus.FAILED]


# Completion --------------------------------------------------------------------------------


def test_completion_settles_completed_exactly_once() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.start("b")
    run.start("c")
    assert run.complete("b", ok()).decision == decisions.Recorded()
    assert run.execution.status is ExecutionStatus.RUNNING
    last = run.complete("c", ok())
    assert last.decision == decisions.Settled(ExecutionStatus.COMPLETED)
    assert last.execution is not None
    assert last.execution.status is ExecutionStatus.COMPLETED
    assert last.execution.completed_at == later(2)
    duplicate = run.complete("c", ok())
    assert isinstance(duplicate.decision, decisions.Duplicate)
    assert duplicate.is_noop
    assert run.settled == [ExecutionStatus.COMPLETED]


def test_execution_with_unreachable_nodes_completes() -> None:
    run = Run(build({"a": [], "x": ["y"], "y": []}, entryNodeId="a"))
    t = run.run("a", ok())
    assert t.decision == decisions.Settled(ExecutionStatus.COMPLETED)


def test_completion_of_wrong_generation_is_a_duplicate() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.start("a")
    t = run.complete("a", ok(), generation=3)
    assert isinstance(t.decision, decisions.Duplicate)
    assert t.is_noop
    assert run.status("a") is NodeStatus.QUEUED  # starting wrote nothing either


def test_completion_of_an_unknown_node_is_a_duplicate() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    assert isinstance(run.complete("b", ok()).decision, decisions.Duplicate)


def test_completed_record_keeps_attempts_and_times() -> None:
    run = Run(build({"a": []}))
    run.run("a", ok({"x": 1}))
    rec = run.nodes["a"]
    assert rec.attempts == 1
    assert rec.started_at == later()
    assert rec.completed_at == later(2)
    assert rec.data == {"x": 1}
    assert rec.skipped is False


def test_paused_execution_claims_children_but_enqueues_nothing() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.start("a")
    run.execution = replace(run.execution, status=ExecutionStatus.PAUSED)
    t = run.complete("a", ok())
    assert t.decision == decisions.Recorded()
    assert t.enqueue == ()
    assert run.status("b") is NodeStatus.QUEUED  # resume sends it


def test_cancelled_execution_records_a_late_completion_only() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.start("a")
    run.execution = replace(run.execution, status=ExecutionStatus.CANCELLED)
    t = run.complete("a", ok())
    assert t.decision == decisions.Recorded()
    assert t.enqueue == ()
    assert t.execution is None
    assert run.status("b") is None


# plan_start --------------------------------------------------------------------------------


def test_plan_start_runs_a_queued_node() -> None:
    run = Run(build({"a": ["b"], "b": []}), initial_data={"k": 1})
    queued = run.nodes["a"]
    t = run.start("a")
    assert isinstance(t.decision, decisions.Run)
    assert t.is_noop  # deciding to run writes nothing: the attempt is recorded with its result
    decision = t.decision
    assert isinstance(decision, decisions.Run)
    assert decision.attempt == 1
    assert decision.execution == run.execution
    assert decision.nodes["a"] == queued
    assert decision.snapshot.nodes["a"] == queued  # what the completion may decide on


def test_plan_mark_running_records_a_long_attempt() -> None:
    run = Run(build({"a": []}))
    run.start("a")
    t = run.apply(planner.plan_mark_running("a", 0, 1, later()))
    assert isinstance(t.decision, decisions.Marked)
    rec = run.nodes["a"]
    assert (rec.status, rec.attempts, rec.started_at) == (NodeStatus.RUNNING, 1, later())
    # Marking the same attempt again, or an older one, changes nothing.
    assert run.apply(planner.plan_mark_running("a", 0, 1, later())).is_noop
    assert run.apply(planner.plan_mark_running("a", 0, 0, later())).is_noop
    # The result then records the same attempt; a later mark cannot undo it.
    run.complete("a", replace(ok(), attempt=1, started_at=later()))
    assert run.nodes["a"].status is NodeStatus.SUCCEEDED
    assert run.nodes["a"].attempts == 1
    assert run.apply(planner.plan_mark_running("a", 0, 2, later())).is_noop
    assert run.nodes["a"].status is NodeStatus.SUCCEEDED


def test_plan_mark_running_skips_other_generations_and_ended_executions() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    assert run.apply(planner.plan_mark_running("a", 7, 1, later())).is_noop
    run.execution = replace(run.execution, status=ExecutionStatus.FAILED)
    assert run.apply(planner.plan_mark_running("a", 0, 1, later())).is_noop
    assert run.status("a") is NodeStatus.QUEUED


def test_plan_defer_undoes_the_running_mark_of_an_attempt_that_does_not_count() -> None:
    # ctx.rate_limit after the node was marked running: queued again, the attempt uncounted.
    run = Run(build({"a": []}))
    run.start("a")
    run.apply(planner.plan_mark_running("a", 0, 1, later()))
    t = run.apply(planner.plan_defer("a", 0, 1, later(3)))
    assert isinstance(t.decision, decisions.Requeued)
    rec = run.nodes["a"]
    assert (rec.status, rec.attempts, rec.queued_at) == (NodeStatus.QUEUED, 0, later(3))
    again = run.start("a").decision
    assert isinstance(again, decisions.Run)
    assert again.attempt == 1  # the next start is attempt 1 again
    # Nothing to undo: not marked, another attempt or generation, or already finished.
    assert run.apply(planner.plan_defer("a", 0, 1, later())).is_noop
    run.apply(planner.plan_mark_running("a", 0, 1, later()))
    assert run.apply(planner.plan_defer("a", 0, 2, later())).is_noop
    assert run.apply(planner.plan_defer("a", 3, 1, later())).is_noop
    run.complete("a", replace(ok(), attempt=1, started_at=later()))
    assert run.apply(planner.plan_defer("a", 0, 1, later())).is_noop
    assert run.nodes["a"].status is NodeStatus.SUCCEEDED


def test_plan_start_counts_attempts() -> None:
    run = Run(build({"a": []}))
    run.start("a")
    run.apply(planner.plan_retry("a", 0, "flaky", later(), attempt=1, started_at=later()))
    t = run.start("a")
    assert isinstance(t.decision, decisions.Run)
    assert t.decision.attempt == 2


def test_only_running_a_queued_node_stands_on_a_recent_snapshot() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    stands = planner.stands_on_recent("a")
    assert stands(run.start("a"))  # queued: claimed by a write this process saw
    run.apply(planner.plan_mark_running("a", 0, 1, later()))
    redelivered = run.start("a")
    assert isinstance(redelivered.decision, decisions.Run)
    assert not stands(redelivered)
    run.execution = replace(run.execution, status=ExecutionStatus.PAUSED)
    assert run.start("a").decision == decisions.Parked()
    assert not stands(run.start("a"))
    run.execution = replace(run.execution, status=ExecutionStatus.RUNNING)
    run.complete("a", ok())
    assert not stands(run.start("a"))  # a duplicate is read again
    assert not stands(run.start("b", generation=1))  # stale


def test_plan_start_on_a_terminal_node_is_a_duplicate() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", ok())
    t = run.start("a")
    assert isinstance(t.decision, decisions.Duplicate)
    assert t.is_noop


def test_plan_start_on_a_skipped_node_is_a_duplicate() -> None:
    run = Run(build({"a": [], "x": []}, entryNodeId="a"))
    assert isinstance(run.start("x").decision, decisions.Duplicate)


def test_plan_start_with_the_wrong_generation_is_stale() -> None:
    run = Run(build({"a": []}))
    t = run.start("a", generation=1)
    assert t.decision == decisions.Stale()
    assert t.is_noop
    assert run.status("a") is NodeStatus.QUEUED


def test_plan_start_on_a_failed_execution_drops_and_cancels_the_node() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.run("b", failed())
    t = run.start("c")  # claimed before the failure, picked up after it
    assert isinstance(t.decision, decisions.Dropped)
    (cancelled,) = t.nodes
    assert cancelled.status is NodeStatus.CANCELLED
    assert cancelled.completed_at == later()
    assert t.execution is None
    assert run.status("c") is NodeStatus.CANCELLED


def test_plan_start_on_a_paused_execution_parks_the_node() -> None:
    run = Run(build({"a": []}))
    run.execution = replace(run.execution, status=ExecutionStatus.PAUSED)
    t = run.start("a")
    assert t.decision == decisions.Parked()
    assert t.is_noop
    assert run.status("a") is NodeStatus.QUEUED


def test_plan_start_on_a_queued_execution_parks_the_node() -> None:
    run = Run(build({"a": []}))
    run.execution = replace(run.execution, status=ExecutionStatus.QUEUED)
    t = run.start("a")
    assert t.decision == decisions.Parked()
    assert t.is_noop


def test_plan_start_on_an_unknown_node() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    t = run.start("b")
    assert t.decision == decisions.Unknown()
    assert t.is_noop


# plan_retry --------------------------------------------------------------------------------


def test_plan_retry_puts_the_node_back_to_queued() -> None:
    run = Run(build({"a": []}))
    run.start("a")
    t = run.apply(planner.plan_retry("a", 0, "timeout", later(5), attempt=1, started_at=later()))
    assert isinstance(t.decision, decisions.Requeued)
    rec = run.nodes["a"]
    assert rec.status is NodeStatus.QUEUED
    assert rec.error == "timeout"
    assert rec.queued_at == later(5)
    assert rec.attempts == 1  # the failed attempt is counted
    assert rec.started_at == later()
    assert t.execution is None
    assert t.enqueue == ()  # the runner reschedules the job itself


def test_plan_retry_on_a_paused_execution_still_requeues() -> None:
    run = Run(build({"a": []}))
    run.start("a")
    run.execution = replace(run.execution, status=ExecutionStatus.PAUSED)
    t = run.apply(planner.plan_retry("a", 0, "x", later()))
    assert isinstance(t.decision, decisions.Requeued)
    assert run.status("a") is NodeStatus.QUEUED


def test_plan_retry_on_an_ended_execution_cancels_the_node() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.start("b")
    run.start("c")
    run.complete("b", failed())
    t = run.apply(planner.plan_retry("c", 0, "flaky", later()))
    assert isinstance(t.decision, decisions.Dropped)
    assert run.status("c") is NodeStatus.CANCELLED
    assert run.nodes["c"].error == "flaky"


@pytest.mark.parametrize("case", ["terminal", "generation", "unknown"])
def test_plan_retry_duplicates(case: str) -> None:
    run = Run(build({"a": ["b"], "b": []}))
    node, generation = "a", 0
    if case == "terminal":
        run.run("a", ok())
    elif case == "generation":
        run.start("a")
        generation = 4
    else:
        node = "b"
    t = run.apply(planner.plan_retry(node, generation, "x", later()))
    assert isinstance(t.decision, decisions.Duplicate)
    assert t.is_noop


# A whole run --------------------------------------------------------------------------------


def test_whole_order_workflow_from_the_spane_json_file() -> None:
    from pathlib import Path

    text = (Path(__file__).parent / "data" / "order_fulfillment.spane.json").read_text()
    run = Run(compile_workflow(parse_definition(text)), initial_data={"order": 1})
    assert run.enqueued == ["validate-order"]
    assert run.input_of("validate-order") == {"order": 1}
    assert run.run("validate-order", ok({"valid": True})).enqueue == (
        "check-inventory",
        "charge-payment",
    )
    assert run.run("charge-payment", ok({"charged": 10})).enqueue == ()
    assert run.run("check-inventory", ok({"reserved": 1})).enqueue == ("ship-order",)
    assert run.input_of("ship-order") == {
        "check-inventory": {"reserved": 1},
        "charge-payment": {"charged": 10},
    }
    assert run.run("ship-order", ok("label")).enqueue == ("notify-customer", "wait-a-day")
    assert run.run("wait-a-day", ok()).enqueue == ("request-review",)
    assert run.run("request-review", ok()).decision == decisions.Recorded()
    assert run.run("notify-customer", ok()).decision == decisions.Settled(ExecutionStatus.COMPLETED)
    assert run.settled == [ExecutionStatus.COMPLETED]
    assert all(r.status is NodeStatus.SUCCEEDED for r in run.nodes.values())
