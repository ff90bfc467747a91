"""A workflow's limit per concurrency key: the definition's shape, its checks, the key value
an execution gets, and the content hash of definitions without one."""

from __future__ import annotations

from typing import Any

import pytest

from spane_py import ConcurrencyLimit, WorkflowDefinition
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.dsl import Workflow
from spane_py.engine import starting
from spane_py.errors import InvalidEnqueueOptionsError, WorkflowValidationError


def definition(**extra: Any) -> dict[str, Any]:
    return {"id": "orders", "nodes": [{"id": "a", "type": "t"}], **extra}


def test_spane_json_and_snake_case_load_the_same() -> None:
    limit = {"key": "input.customer_id", "max": 1}
    camel = parse_definition(definition(concurrency=limit, maxConcurrency=5))
    snake = parse_definition(definition(concurrency=limit, max_concurrency=5))
    assert camel == snake
    assert camel.concurrency == ConcurrencyLimit(key="input.customer_id", max=1)
    assert camel.to_spane_json()["concurrency"] == limit
    assert parse_definition(camel.to_spane_json()) == camel


@pytest.mark.parametrize(
    "key",
    ["customer_id", "input", "input.", "input..id", "body.id", "Input.id", ".input.id", ""],
)
def test_a_key_that_is_not_a_path_into_input_or_metadata_is_refused(key: str) -> None:
    with pytest.raises(WorkflowValidationError) as exc:
        parse_definition(definition(concurrency={"key": key, "max": 1}))
    assert "concurrency.key" in str(exc.value)
    if key:
        assert "starts with 'input.'" in str(exc.value)


@pytest.mark.parametrize("limit", [{"key": "input.id", "max": 0}, {"key": "input.id"}, {"max": 1}])
def test_max_is_at_least_one_and_both_fields_are_required(limit: dict[str, Any]) -> None:
    with pytest.raises(WorkflowValidationError, match="concurrency"):
        parse_definition(definition(concurrency=limit))


@pytest.mark.parametrize(
    ("key", "data", "metadata", "expected"),
    [
        ("input.customer_id", {"customer_id": 7}, {}, "7"),
        ("input.customer_id", {"customer_id": "7"}, {}, '"7"'),
        ("input.customer_id", {"customer_id": None}, {}, "null"),
        ("input.customer.id", {"customer": {"id": "c-1"}}, {}, '"c-1"'),
        ("input.lines.0.sku", {"lines": [{"sku": "x"}]}, {}, '"x"'),
        ("input.lines.-1", {"lines": [1, 2]}, {}, "2"),
        ("input.who", {"who": {"b": 1, "a": [True, "é"]}}, {}, '{"a":[true,"é"],"b":1}'),
        ("metadata.tenant", {"tenant": "not this"}, {"tenant": "t1"}, '"t1"'),
        ("input.customer_id", {}, {}, None),
        ("input.customer_id", [1], {}, None),
        ("input.customer_id", None, {}, None),
        ("input.lines.5", {"lines": [1]}, {}, None),
        ("input.lines.x", {"lines": [1]}, {}, None),
        ("metadata.tenant", {"tenant": "t1"}, {}, None),
    ],
)
def test_the_key_value_is_the_canonical_json_found_at_the_path(
    key: str, data: Any, metadata: dict[str, Any], expected: str | None
) -> None:
    assert ConcurrencyLimit(key=key, max=1).key_of(data, metadata) == expected


def test_a_definition_without_a_key_limit_keeps_its_content_hash() -> None:
    """Definitions registered before key limits existed hash the same: registering them
    again after an upgrade makes no new version. (The hash the code before them gave.)"""
    plain = compile_workflow(
        WorkflowDefinition.model_validate(
            {
                "id": "w",
                "name": "w",
                "nodes": [{"id": "a", "type": "delay", "inputs": [], "config": {"duration": 1}}],
            }
        )
    )
    assert plain.content_hash == "3f6dc35783f9ccc5039d52c004fbe72569507b926715e71a4c3d66dd9f859619"
    limited = compile_workflow(
        plain.definition.model_copy(update={"concurrency": ConcurrencyLimit(key="input.id", max=1)})
    )
    assert limited.content_hash != plain.content_hash


def test_the_dsl_takes_a_limit_or_its_dict() -> None:
    by_model = Workflow("orders", concurrency=ConcurrencyLimit(key="input.customer_id", max=2))
    by_dict = Workflow("orders", concurrency={"key": "input.customer_id", "max": 2})
    for wf in (by_model, by_dict):

        @wf.node()
        async def charge(data: Any) -> Any:
            return data

        assert wf.definition().concurrency == ConcurrencyLimit(key="input.customer_id", max=2)
    bad = Workflow("orders", concurrency={"key": "customer_id", "max": 2})
    bad.add("a", "t")
    with pytest.raises(WorkflowValidationError, match="not a key expression"):
        bad.definition()


def _start(**extra: Any) -> starting.Start:
    graph = compile_workflow(parse_definition(definition(**extra)))
    return starting.Start("orders", 1, graph, None, 0.0, {"tenant": "t1"})


def test_a_new_execution_gets_its_key_and_a_missing_one_is_refused() -> None:
    start = _start(concurrency={"key": "input.customer.id", "max": 1})
    assert start.limited
    assert start.concurrency_key('{"customer": {"id": 7}}') == "7"
    with pytest.raises(InvalidEnqueueOptionsError) as exc:
        start.concurrency_key('{"customer": {}}')
    assert str(exc.value) == (
        "workflow 'orders' limits concurrency per 'input.customer.id', and the execution's "
        "input has no value there"
    )
    by_tenant = _start(concurrency={"key": "metadata.tenant", "max": 1})
    assert by_tenant.concurrency_key("null") == '"t1"'
    assert _start().concurrency_key("{}") is None
    assert not _start().limited


def test_a_key_too_long_to_index_is_refused() -> None:
    start = _start(concurrency={"key": "input.id", "max": 1})
    fits = "x" * (starting.MAX_CONCURRENCY_KEY_BYTES - 2)  # and its quotes
    assert start.concurrency_key(f'{{"id": "{fits}"}}') == f'"{fits}"'
    with pytest.raises(InvalidEnqueueOptionsError, match="over the limit of 1024"):
        start.concurrency_key(f'{{"id": "{fits}é"}}')
