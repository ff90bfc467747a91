"""An execution's output, decided by the planner when it completes (``dataflow.final_output``):
one final node: its data; several: ``{node_id: data}`` of those that succeeded."""

from __future__ import annotations

import json

from spane_py.engine import planner
from spane_py.engine.dataflow import final_output
from spane_py.records import evolve_execution
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.base import NodeRecord
from tests.unit.test_planner import Run, build, failed, later, ok, skipped


def output_of(run: Run) -> object:
    assert run.execution.output is not None
    return json.loads(run.execution.output)


def test_one_final_node_gives_its_data() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", ok({"mid": 1}))
    assert run.execution.output is None  # not completed yet
    run.run("b", ok({"rows": [1, 2], "empty": "", "zero": 0}))
    assert run.execution.status is ExecutionStatus.COMPLETED
    assert output_of(run) == {"rows": [1, 2], "empty": "", "zero": 0}


def test_several_final_nodes_give_an_object_by_node_id() -> None:
    run = Run(build({"a": ["b", "c"], "b": [], "c": []}))
    run.run("a", ok())
    run.run("b", ok([1]))
    run.run("c", ok(None))
    assert output_of(run) == {"b": [1], "c": None}


def test_a_skipped_branch_is_left_out() -> None:
    run = Run(build({"a": ["yes", "no"], "yes": [], "no": []}))
    run.run("a", ok(next_nodes=["yes"]))
    run.run("yes", ok("taken"))
    assert output_of(run) == {"yes": "taken"}


def test_a_lone_final_node_that_was_skipped_gives_null() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", ok(next_nodes=[]))
    assert run.execution.status is ExecutionStatus.COMPLETED
    assert run.execution.output == "null"

    by_executor = Run(build({"a": []}))
    by_executor.run("a", skipped())
    assert by_executor.execution.output == "null"


def test_a_failed_execution_has_no_output() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", failed())
    assert run.execution.status is ExecutionStatus.FAILED
    assert run.execution.output is None


def test_a_retried_execution_forgets_an_output() -> None:
    run = Run(build({"a": ["b"], "b": []}))
    run.run("a", ok())
    run.run("b", failed())
    # An execution record that (somehow) kept an output loses it when it runs again.
    run.execution = evolve_execution(run.execution, output='"stale"')
    run.apply(planner.plan_retry_execution(run.graph, later(3)))
    assert run.execution.status is ExecutionStatus.RUNNING
    assert run.execution.output is None


def test_the_output_is_built_from_the_nodes_json_text() -> None:
    graph = build({"q-1": [], "r_2": [], "none": [], "later": []})
    nodes = {
        "q-1": NodeRecord("q-1", NodeStatus.SUCCEEDED, output='{"k": [1, {"x": null}]}'),
        "r_2": NodeRecord("r_2", NodeStatus.SUCCEEDED, output=None),  # no data: null
        "none": NodeRecord("none", NodeStatus.SKIPPED, skipped=True, output='"kept out"'),
    }
    assert json.loads(final_output(graph, nodes)) == {"q-1": {"k": [1, {"x": None}]}, "r_2": None}
