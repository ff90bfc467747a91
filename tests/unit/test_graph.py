"""compile_workflow: graph checks, derived edges, entry nodes, warnings, content hash."""

from __future__ import annotations

import re
from typing import Any

import pytest

from spane_py.definitions.graph import WorkflowGraph, compile_workflow, content_hash
from spane_py.definitions.loading import parse_definition
from spane_py.errors import WorkflowValidationError


def graph(nodes: list[dict[str, Any]], **top: Any) -> WorkflowGraph:
    return compile_workflow(parse_definition({"id": "wf", "nodes": nodes, **top}))


def invalid(nodes: list[dict[str, Any]], **top: Any) -> WorkflowValidationError:
    with pytest.raises(WorkflowValidationError) as info:
        graph(nodes, **top)
    assert info.value.workflow_id == "wf"
    assert str(info.value).startswith("workflow 'wf' is invalid: ")
    return info.value


def n(node_id: str, **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": "t", **fields}


# Errors ---------------------------------------------------------------------------


def test_cycle_reports_its_path() -> None:
    err = invalid([n("a", outputs=["b"]), n("b", outputs=["c"]), n("c", outputs=["a"])])
    assert "cycle detected: a -> b -> c -> a" in str(err)
    assert err.issues[0].node_id == "a"


def test_cycle_below_a_root_reports_only_the_cycle() -> None:
    err = invalid(
        [
            n("root", outputs=["x"]),
            n("x", inputs=["root", "z"], outputs=["y"]),
            n("y", inputs=["x"], outputs=["z"]),
            n("z", inputs=["y"], outputs=["x"]),
        ]
    )
    assert re.search(r"cycle detected: x -> y -> z -> x\b", str(err))
    assert "root ->" not in str(err)


def test_two_node_cycle_written_on_inputs_side() -> None:
    err = invalid([n("a", inputs=["b"]), n("b", inputs=["a"])])
    assert "cycle detected: a -> b -> a" in str(err)


def test_missing_node_in_outputs() -> None:
    err = invalid([n("a", outputs=["ghost"])])
    assert "node 'a' lists 'ghost' in its outputs, but there is no node 'ghost'" in str(err)
    assert err.issues[0].node_id == "a"


def test_missing_node_in_inputs() -> None:
    err = invalid([n("a"), n("b", inputs=["a", "nowhere"])])
    assert "node 'b' lists 'nowhere' in its inputs, but there is no node 'nowhere'" in str(err)


def test_duplicate_node_ids() -> None:
    err = invalid([n("a"), n("b"), n("a")])
    assert "duplicate node id 'a'" in str(err)


def test_node_listing_itself() -> None:
    err = invalid([n("a", outputs=["a"])])
    assert "node 'a' lists itself in its outputs" in str(err)
    err = invalid([n("a", inputs=["a"])])
    assert "node 'a' lists itself in its inputs" in str(err)


def test_same_reference_twice() -> None:
    err = invalid([n("a", outputs=["b", "b"]), n("b")])
    assert "node 'a' lists 'b' twice" in str(err)


def test_outputs_without_matching_inputs_when_both_are_written() -> None:
    err = invalid([n("a", inputs=[], outputs=["b"]), n("b", inputs=[], outputs=[])])
    assert "node 'a' lists 'b' in its outputs, but 'b' does not list 'a' in its inputs" in str(err)
    assert err.issues[0].node_id == "b"


def test_inputs_without_matching_outputs_when_both_are_written() -> None:
    err = invalid([n("a", inputs=[], outputs=[]), n("b", inputs=["a"], outputs=[])])
    assert "node 'b' lists 'a' in its inputs, but 'a' does not list 'b' in its outputs" in str(err)
    assert err.issues[0].node_id == "a"


def test_unknown_entry_node() -> None:
    err = invalid([n("a")], entryNodeId="zzz")
    assert "entry node 'zzz' is not a node of the workflow" in str(err)


def test_empty_nodes_list() -> None:
    err = invalid([])
    assert "the workflow has no nodes" in str(err)


def test_several_reference_problems_are_reported_together() -> None:
    err = invalid([n("a", outputs=["x"]), n("b", inputs=["y"]), n("b")])
    messages = " | ".join(i.message for i in err.issues)
    assert "duplicate node id 'b'" in messages
    assert "'x'" in messages
    assert "'y'" in messages
    assert len(err.issues) == 3


def test_validation_error_from_pydantic_names_id() -> None:
    with pytest.raises(WorkflowValidationError, match=r"^workflow 'Not Valid' is invalid: id:"):
        parse_definition({"id": "Not Valid", "nodes": [n("a")]})


# Edges ----------------------------------------------------------------------------


def test_inputs_are_derived_from_outputs() -> None:
    g = graph([n("a", outputs=["b", "c"]), n("b", outputs=["d"]), n("c", outputs=["d"]), n("d")])
    assert g.parents == {"a": (), "b": ("a",), "c": ("a",), "d": ("b", "c")}
    assert g.children == {"a": ("b", "c"), "b": ("d",), "c": ("d",), "d": ()}
    assert g.definition.node("d").inputs == ["b", "c"]


def test_outputs_are_derived_from_inputs() -> None:
    g = graph([n("a"), n("b", inputs=["a"]), n("c", inputs=["a"]), n("d", inputs=["c", "b"])])
    assert g.children["a"] == ("b", "c")
    assert g.children["b"] == ("d",)
    assert g.parents["d"] == ("c", "b")  # the node's own order is kept
    assert g.definition.node("a").outputs == ["b", "c"]
    assert g.entry_nodes == ("a",)


def test_mixed_sides_are_merged() -> None:
    # a writes its output to b; c writes its input from b; nobody writes both sides
    g = graph([n("a", outputs=["b"]), n("b"), n("c", inputs=["b"])])
    assert g.parents == {"a": (), "b": ("a",), "c": ("b",)}
    assert g.children == {"a": ("b",), "b": ("c",), "c": ()}


def test_both_sides_written_and_consistent() -> None:
    g = graph([n("a", inputs=[], outputs=["b"]), n("b", inputs=["a"], outputs=[])], entryNodeId="a")
    assert g.parents["b"] == ("a",)
    assert g.entry_nodes == ("a",)
    assert g.warnings == ()


# Entry nodes and reachability --------------------------------------------------


def test_multiple_roots_without_entry_node_are_all_entries() -> None:
    g = graph([n("a", outputs=["c"]), n("b", outputs=["c"]), n("c"), n("lonely")])
    assert g.entry_nodes == ("a", "b", "lonely")
    assert g.unreachable == ()
    assert g.warnings == ()
    assert g.reachable == frozenset({"a", "b", "c", "lonely"})


def test_unreachable_nodes_are_warnings_not_errors() -> None:
    g = graph(
        [
            n("a", outputs=["b"]),
            n("b"),
            n("orphan", outputs=["orphan-child"]),
            n("orphan-child"),
        ],
        entryNodeId="a",
    )
    assert g.entry_nodes == ("a",)
    assert g.unreachable == ("orphan", "orphan-child")
    assert len(g.warnings) == 2
    assert "'orphan'" in g.warnings[0]
    assert "not reachable" in g.warnings[0]
    assert "'orphan-child'" in g.warnings[1]


def test_node_fed_by_an_unreachable_and_a_reachable_parent_is_reachable() -> None:
    g = graph([n("a", outputs=["j"]), n("x", outputs=["j"]), n("j")], entryNodeId="a")
    assert g.unreachable == ("x",)
    assert "j" in g.reachable


def test_graph_properties() -> None:
    g = graph([n("a", outputs=["b"]), n("b")])
    assert g.workflow_id == "wf"
    assert g.order == ("a", "b")
    assert set(g.nodes) == {"a", "b"}
    assert g.nodes["b"].inputs == ["a"]


def test_compiling_a_normalised_definition_again_changes_nothing() -> None:
    g = graph([n("a", outputs=["b", "c"]), n("b"), n("c", inputs=["a"])])
    again = compile_workflow(g.definition)
    assert again.parents == g.parents
    assert again.children == g.children
    assert again.content_hash == g.content_hash
    # and through SPANE JSON
    assert compile_workflow(parse_definition(g.definition.to_spane_json())).content_hash == (
        g.content_hash
    )


# content_hash ---------------------------------------------------------------------


def _definition(config: dict[str, Any] | None = None, extra: bool = False) -> dict[str, Any]:
    nodes = [
        n("a", config=config if config is not None else {"x": 1, "y": {"p": 1, "q": [1, 2]}}),
        n("b", inputs=["a"]),
    ]
    if extra:
        nodes.append(n("c", inputs=["b"]))
    return {"id": "wf", "nodes": nodes}


def test_identical_definitions_hash_equal() -> None:
    h1 = compile_workflow(parse_definition(_definition())).content_hash
    h2 = compile_workflow(parse_definition(_definition())).content_hash
    assert h1 == h2
    assert re.fullmatch(r"[0-9a-f]{64}", h1)


def test_key_order_does_not_matter() -> None:
    reordered = _definition(config={"y": {"q": [1, 2], "p": 1}, "x": 1})
    reordered = dict(reversed(list(reordered.items())))
    reordered["nodes"] = [dict(reversed(list(node.items()))) for node in reordered["nodes"]]
    assert compile_workflow(parse_definition(reordered)).content_hash == (
        compile_workflow(parse_definition(_definition())).content_hash
    )


def test_camel_and_snake_case_hash_equal() -> None:
    camel = {"id": "wf", "entryNodeId": "a", "nodes": [n("a", timeoutMs=5)]}
    snake = {"id": "wf", "entry_node_id": "a", "nodes": [n("a", timeout_ms=5)]}
    assert compile_workflow(parse_definition(camel)).content_hash == (
        compile_workflow(parse_definition(snake)).content_hash
    )


def test_edges_written_on_either_side_hash_equal() -> None:
    by_outputs = {"id": "wf", "nodes": [n("a", outputs=["b"]), n("b")]}
    by_inputs = {"id": "wf", "nodes": [n("a"), n("b", inputs=["a"])]}
    assert compile_workflow(parse_definition(by_outputs)).content_hash == (
        compile_workflow(parse_definition(by_inputs)).content_hash
    )


@pytest.mark.parametrize(
    "changed",
    [
        _definition(config={"x": 2, "y": {"p": 1, "q": [1, 2]}}),  # a config value
        _definition(config={"x": 1, "y": {"p": 1, "q": [2, 1]}}),  # list order matters
        _definition(config={"x": 1, "y": {"p": 1, "q": [1, 2]}, "z": None}),  # a key added
        _definition(extra=True),  # a node added
        {**_definition(), "name": "renamed"},
        {**_definition(), "entryNodeId": "a"},
        {**_definition(), "maxConcurrency": 3},
    ],
)
def test_any_change_changes_the_hash(changed: dict[str, Any]) -> None:
    base = compile_workflow(parse_definition(_definition())).content_hash
    assert compile_workflow(parse_definition(changed)).content_hash != base


def test_content_hash_of_a_bare_definition_is_stable() -> None:
    d1 = parse_definition(_definition())
    d2 = parse_definition(_definition())
    assert content_hash(d1) == content_hash(d2)
    assert content_hash(d1) != content_hash(parse_definition(_definition(extra=True)))
