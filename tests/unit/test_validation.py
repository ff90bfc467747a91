"""Every problem of a definition in one error (issue 12, item 13): its fields, its graph and
its node types and configs, each named with its kind and location."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from spane_py import (
    ExecutionContext,
    NodeNotRegisteredError,
    NodeRegistry,
    Workflow,
    WorkflowEngine,
    WorkflowValidationError,
)
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.definitions.validation import validate_workflow
from spane_py.errors import ValidationIssue


async def echo(ctx: ExecutionContext) -> Any:
    return ctx.input_data


class Mail(BaseModel):
    to: str


def registry() -> NodeRegistry:
    reg = NodeRegistry()
    reg.register("t", echo)
    reg.register("mail", echo, config_model=Mail)
    return reg


def problems(definition: Any, reg: NodeRegistry | None = None) -> WorkflowValidationError:
    reg = reg if reg is not None else registry()
    with pytest.raises(WorkflowValidationError) as caught:
        validate_workflow(definition, check_nodes=reg.workflow_issues)
    return caught.value


def where(issues: list[ValidationIssue]) -> list[tuple[str, str | None]]:
    return [(str(i.kind), i.node_id) for i in issues]


def n(node_id: str, node_type: str = "t", **fields: Any) -> dict[str, Any]:
    return {"id": node_id, "type": node_type, **fields}


def test_a_cycle_an_unknown_reference_and_an_unregistered_type_are_all_reported() -> None:
    err = problems(
        {
            "id": "wf",
            "nodes": [
                n("a", outputs=["b"]),
                n("b", outputs=["a"]),
                n("c", inputs=["ghost"]),
                n("d", "nope"),
            ],
        }
    )
    assert type(err) is WorkflowValidationError  # several kinds: the common class
    assert where(err.issues) == [
        ("unknown_reference", "c"),
        ("cycle", "a"),
        ("node_not_registered", "d"),
    ]
    assert err.issues[0].edge == ("ghost", "c")
    assert err.issues[0].path == ("inputs",)
    assert err.issues[1].edge == ("b", "a")  # the edge that closes the cycle
    message = str(err)
    assert "no node 'ghost'" in message
    assert "cycle detected: a -> b -> a" in message
    assert "node 'd' has type 'nope'" in message


def test_every_graph_problem_is_reported_together() -> None:
    err = problems(
        {
            "id": "wf",
            "entryNodeId": "nowhere",
            "nodes": [
                n("a", outputs=["b", "b"]),
                n("b", inputs=[], outputs=["a"]),  # does not list 'a' in its inputs
                n("c", outputs=["c", "d"]),
                n("d", outputs=["e"]),
                n("e", outputs=["d"]),
                n("c"),
            ],
        }
    )
    assert where(err.issues) == [
        ("duplicate_node_id", "c"),
        ("duplicate_reference", "a"),
        ("self_reference", "c"),
        ("edge_mismatch", "b"),
        ("cycle", "a"),
        ("cycle", "d"),
        ("unknown_entry_node", None),
    ]
    assert "cycle detected: d -> e -> d" in str(err)
    assert err.issues[-1].path == ("entryNodeId",)


def test_field_problems_come_with_the_problems_of_the_rest() -> None:
    err = problems(
        {
            "id": "wf",
            "nodes": [
                n("a", timeoutMs=-1, outputs=["b"]),  # invalid itself: left out of the rest
                n("b", inputs=["a", "ghost", "c"], outputs=["c"]),
                n("c", outputs=["b"]),
                n("m", "mail", config={}),
                n("x", "nope"),
            ],
        }
    )
    assert where(err.issues) == [
        ("invalid_field", "a"),
        ("unknown_reference", "b"),  # 'ghost'; not 'a', which exists but is invalid
        ("cycle", "b"),
        ("invalid_config", "m"),
        ("node_not_registered", "x"),
    ]
    assert err.issues[0].path == ("timeoutMs",)
    assert err.issues[3].path == ("config", "to")
    assert err.workflow_id == "wf"


def test_only_unregistered_types_raise_node_not_registered() -> None:
    err = problems({"id": "wf", "nodes": [n("a", "x"), n("b", "y", inputs=["a"])]})
    assert type(err) is NodeNotRegisteredError
    assert where(err.issues) == [("node_not_registered", "a"), ("node_not_registered", "b")]


def test_one_problem_keeps_its_error_class() -> None:
    assert type(problems({"id": "wf", "nodes": [n("a", "x")]})) is NodeNotRegisteredError
    cycle = problems({"id": "wf", "nodes": [n("a", outputs=["b"]), n("b", outputs=["a"])]})
    assert type(cycle) is WorkflowValidationError
    assert where(cycle.issues) == [("cycle", "a")]


def test_problems_are_listed_in_details_with_kind_and_location() -> None:
    err = problems({"id": "wf", "nodes": [n("a", outputs=["zz"]), n("b", "nope")]})
    assert err.details["problems"] == [
        {
            "kind": "unknown_reference",
            "message": "node 'a' lists 'zz' in its outputs, but there is no node 'zz'",
            "node_id": "a",
            "edge": ["a", "zz"],
            "path": ["outputs"],
        },
        {
            "kind": "node_not_registered",
            "message": "node 'b' has type 'nope', which has no registered executor "
            "(registered: mail, t)",
            "node_id": "b",
            "edge": None,
            "path": ["type"],
        },
    ]
    assert err.details["issues"] == [p["message"] for p in err.details["problems"]]


def test_text_that_is_not_json_and_limits_are_refused_alone_with_a_kind() -> None:
    assert where(problems("{nope").issues) == [("invalid_json", None)]
    assert where(problems("[1]").issues) == [("invalid_json", None)]
    many = {"id": "wf", "nodes": [n(f"n{i}") for i in range(1001)]}
    assert where(problems(many).issues) == [("too_large", None)]


def test_compile_workflow_alone_reports_every_graph_problem() -> None:
    definition = parse_definition(
        {"id": "wf", "nodes": [n("a", outputs=["b"]), n("b", outputs=["a"]), n("c", inputs=["z"])]}
    )
    with pytest.raises(WorkflowValidationError) as caught:
        compile_workflow(definition)
    assert where(caught.value.issues) == [("unknown_reference", "c"), ("cycle", "a")]


def dsl_workflow(timeout_ms: int | None) -> Workflow:
    wf = Workflow("dsl")

    @wf.node(after=["later"], timeout_ms=timeout_ms)
    async def first() -> None:
        return None

    @wf.node(after=[first])
    async def later() -> None:
        return None

    wf.add("send", "smtp", after=["nobody"])
    return wf


async def test_register_workflow_collects_the_problems_of_a_dsl_workflow() -> None:
    engine = WorkflowEngine(NodeRegistry())  # registering needs the store only
    try:
        with pytest.raises(WorkflowValidationError) as caught:
            await engine.register_workflow(dsl_workflow(timeout_ms=None))
        assert where(caught.value.issues) == [
            ("unknown_reference", "send"),
            ("cycle", "first"),
            ("node_not_registered", "send"),
        ]
        # A node whose own field is invalid is left out of the rest (its cycle is not
        # reported: it would name a node that is not there); the others still are.
        with pytest.raises(WorkflowValidationError) as caught:
            await engine.register_workflow(dsl_workflow(timeout_ms=-1))
        assert where(caught.value.issues) == [
            ("invalid_field", "first"),
            ("unknown_reference", "send"),
            ("node_not_registered", "send"),
        ]
        assert await engine.store.get_workflow_count(active_only=False) == 0
    finally:
        await engine.close()
