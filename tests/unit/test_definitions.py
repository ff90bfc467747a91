"""Definition models and loading: SPANE's camelCase JSON, snake_case, triggers, round trips."""

from __future__ import annotations

import json
import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.definitions.models import (
    BackoffPolicy,
    NodeDefinition,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
)
from spane_py.errors import WorkflowValidationError

DATA = Path(__file__).parent / "data"
ORDER_JSON = DATA / "order_fulfillment.spane.json"


@pytest.fixture
def order_text() -> str:
    return ORDER_JSON.read_text(encoding="utf-8")


@pytest.fixture
def order(order_text: str) -> WorkflowDefinition:
    return parse_definition(order_text)


# SPANE's camelCase JSON, loaded from a file as text --------------------------------


def test_spane_json_file_loads_with_every_field(order: WorkflowDefinition) -> None:
    assert order.id == "order-fulfillment"
    assert order.name == "Order fulfillment"
    assert order.entry_node_id == "validate-order"
    assert order.max_concurrency == 5
    assert [n.id for n in order.nodes] == [
        "validate-order",
        "check-inventory",
        "charge-payment",
        "ship-order",
        "notify-customer",
        "wait-a-day",
        "request-review",
    ]
    charge = order.node("charge-payment")
    assert charge.type == "http"
    assert charge.timeout_ms == 10000
    assert charge.inputs == ["validate-order"]
    assert charge.outputs == ["ship-order"]
    assert charge.retry_policy == RetryPolicy(
        max_attempts=5, backoff=BackoffPolicy(type="exponential", delay=1000)
    )
    assert charge.retry_policy is not None
    assert charge.retry_policy.continue_on_fail is False
    notify = order.node("notify-customer")
    assert notify.retry_policy is not None
    assert notify.retry_policy.continue_on_fail is True
    assert notify.retry_policy.backoff.delay == 2000
    # config is kept as written, camelCase keys and nulls included
    assert notify.config == {"template": "order-shipped", "cc": None}
    review = order.node("request-review")
    assert review.config["inputMapping"] == {"email": "customer.email", "orderId": "order.id"}
    assert order.node("ship-order").config["headers"] == {"X-Carrier": "ups"}


def test_spane_json_triggers_in_nested_shape(order: WorkflowDefinition) -> None:
    webhook, schedule = order.triggers
    assert isinstance(webhook, WebhookTrigger)
    assert webhook.path == "orders/new"
    assert webhook.method == "POST"  # SPANE writes it in any case
    assert isinstance(schedule, ScheduleTrigger)
    assert schedule.cron == "0 9 * * *"
    assert schedule.timezone == "America/New_York"


def test_retry_policy_inside_config_is_lifted_to_the_node(order: WorkflowDefinition) -> None:
    inventory = order.node("check-inventory")
    assert inventory.retry_policy == RetryPolicy(
        max_attempts=4, backoff=BackoffPolicy(type="fixed", delay=500)
    )
    assert inventory.effective_retry_policy.max_attempts == 4
    # moved, not copied: a type's config model never sees it
    assert "retryPolicy" not in inventory.config
    assert inventory.config == {
        "url": "https://inventory.internal/api/reserve",
        "method": "POST",
    }


def test_top_level_retry_policy_wins_over_one_in_config() -> None:
    node = NodeDefinition.model_validate(
        {
            "id": "a",
            "type": "t",
            "retryPolicy": {"maxAttempts": 7},
            "config": {"retryPolicy": {"maxAttempts": 2}, "x": 1},
        }
    )
    assert node.retry_policy is not None
    assert node.retry_policy.max_attempts == 7
    assert node.config == {"x": 1}


def test_explicit_null_top_level_retry_policy_does_not_hide_the_one_in_config() -> None:
    node = NodeDefinition.model_validate(
        {"id": "a", "type": "t", "retryPolicy": None, "config": {"retryPolicy": {}}}
    )
    assert node.retry_policy == RetryPolicy()
    assert node.config == {}


def test_retry_policy_in_config_snake_case_is_lifted() -> None:
    node = NodeDefinition.model_validate(
        {"id": "a", "type": "t", "config": {"retry_policy": {"max_attempts": 2}}}
    )
    assert node.retry_policy == RetryPolicy(max_attempts=2)
    assert node.config == {}


def test_where_retry_policy_was_written_does_not_change_the_hash() -> None:
    in_config = {"id": "w", "nodes": [{"id": "a", "type": "t", "config": {"retryPolicy": {}}}]}
    top = {"id": "w", "nodes": [{"id": "a", "type": "t", "retryPolicy": {}}]}
    g1 = compile_workflow(parse_definition(in_config))
    g2 = compile_workflow(parse_definition(top))
    assert g1.content_hash == g2.content_hash


def test_node_without_retry_policy_runs_once() -> None:
    node = NodeDefinition(id="a", type="t")
    assert node.retry_policy is None
    assert node.effective_retry_policy.max_attempts == 1


def test_retry_policy_defaults_match_spane() -> None:
    policy = RetryPolicy.model_validate({})
    assert policy.max_attempts == 3
    assert policy.backoff.type == "exponential"
    assert policy.backoff.delay == 1000
    assert policy.continue_on_fail is False


def test_flat_trigger_shape_loads_too() -> None:
    definition = parse_definition(
        {
            "id": "flat",
            "nodes": [{"id": "a", "type": "t"}],
            "triggers": [
                {"type": "webhook", "path": "/hooks/flat/", "method": "put", "secret": "s3"},
                {"type": "schedule", "cron": "*/5 * * * *"},
            ],
        }
    )
    webhook, schedule = definition.triggers
    assert isinstance(webhook, WebhookTrigger)
    assert webhook.path == "hooks/flat"
    assert webhook.method == "PUT"
    assert webhook.secret == "s3"
    assert isinstance(schedule, ScheduleTrigger)
    assert schedule.cron == "*/5 * * * *"
    assert schedule.timezone == "UTC"


def test_webhook_method_defaults_to_post_and_bad_methods_are_refused() -> None:
    assert WebhookTrigger.model_validate({"config": {"path": "x"}}).method == "POST"
    with pytest.raises(WorkflowValidationError, match="triggers"):
        parse_definition(
            {
                "id": "w",
                "nodes": [{"id": "a", "type": "t"}],
                "triggers": [{"type": "webhook", "config": {"path": "x", "method": "TRACE"}}],
            }
        )


def test_webhook_path_of_only_slashes_is_refused() -> None:
    with pytest.raises(WorkflowValidationError, match="must not be empty"):
        parse_definition(
            {
                "id": "w",
                "nodes": [{"id": "a", "type": "t"}],
                "triggers": [{"type": "webhook", "config": {"path": "///"}}],
            }
        )


def test_unknown_trigger_type_is_refused() -> None:
    with pytest.raises(WorkflowValidationError, match="triggers"):
        parse_definition(
            {
                "id": "w",
                "nodes": [{"id": "a", "type": "t"}],
                "triggers": [{"type": "email", "config": {"to": "x"}}],
            }
        )


def test_snake_case_loads_into_the_same_models(order: WorkflowDefinition) -> None:
    snake = parse_definition(order.model_dump(mode="json"))
    assert snake == order
    assert "entry_node_id" in order.model_dump()
    # and a hand-written snake_case definition
    hand = parse_definition(
        {
            "id": "snake",
            "entry_node_id": "a",
            "max_concurrency": 2,
            "nodes": [
                {
                    "id": "a",
                    "type": "t",
                    "timeout_ms": 100,
                    "retry_policy": {
                        "max_attempts": 2,
                        "backoff": {"type": "fixed", "delay": 10, "max_delay": 20},
                        "continue_on_fail": True,
                    },
                }
            ],
        }
    )
    assert hand.entry_node_id == "a"
    assert hand.max_concurrency == 2
    a = hand.node("a")
    assert a.timeout_ms == 100
    assert a.retry_policy == RetryPolicy(
        max_attempts=2,
        backoff=BackoffPolicy(type="fixed", delay=10, max_delay=20),
        continue_on_fail=True,
    )


def test_to_spane_json_gives_camel_case_back(order: WorkflowDefinition, order_text: str) -> None:
    out = order.to_spane_json()
    assert out["entryNodeId"] == "validate-order"
    assert out["maxConcurrency"] == 5
    assert "entry_node_id" not in out
    charge = next(n for n in out["nodes"] if n["id"] == "charge-payment")
    assert charge["timeoutMs"] == 10000
    assert charge["retryPolicy"]["maxAttempts"] == 5
    assert charge["retryPolicy"]["continueOnFail"] is False
    assert charge["retryPolicy"]["backoff"] == {
        "type": "exponential",
        "delay": 1000,
        "maxDelay": 3_600_000,
        "jitter": 0.0,
    }
    # triggers go back in SPANE's nested {type, config} shape
    assert out["triggers"] == [
        {"type": "webhook", "config": {"path": "orders/new", "method": "POST"}},
        {"type": "schedule", "config": {"cron": "0 9 * * *", "timezone": "America/New_York"}},
    ]
    # every key the file wrote comes back with the same spelling
    original = json.loads(order_text)
    assert set(original) <= set(out)
    for written, node in zip(original["nodes"], out["nodes"], strict=True):
        assert set(written) <= set(node), written["id"]
        assert "retry_policy" not in node
        assert "timeout_ms" not in node


def test_to_spane_json_round_trips(order: WorkflowDefinition) -> None:
    text = json.dumps(order.to_spane_json())
    again = parse_definition(text)
    assert again == order
    assert again.to_spane_json() == order.to_spane_json()
    assert compile_workflow(again).content_hash == compile_workflow(order).content_hash


@pytest.mark.parametrize("side", ["inputs", "outputs"])
def test_edges_written_on_one_side_survive_dump_and_spane_json(side: str) -> None:
    if side == "outputs":
        nodes = [{"id": "a", "type": "t", "outputs": ["b", "c"]}, {"id": "b", "type": "t"}]
        nodes.append({"id": "c", "type": "t", "outputs": ["b"]})
    else:
        nodes = [{"id": "a", "type": "t"}, {"id": "b", "type": "t", "inputs": ["a", "c"]}]
        nodes.append({"id": "c", "type": "t", "inputs": ["a"]})
    definition = parse_definition({"id": "w", "nodes": nodes})
    graph = compile_workflow(definition)
    # snake_case dump and back: the same definition, nothing turned into a written []
    assert parse_definition(definition.model_dump(mode="json")) == definition
    # SPANE JSON: both sides on every node, consistent, same compiled graph
    spane = definition.to_spane_json()
    edges = {n["id"]: (sorted(n["inputs"]), sorted(n["outputs"])) for n in spane["nodes"]}
    assert edges == {"a": ([], ["b", "c"]), "b": (["a", "c"], []), "c": (["a"], ["b"])}
    again = compile_workflow(parse_definition(json.dumps(spane)))
    assert again.content_hash == graph.content_hash
    assert again.parents == graph.parents


def test_inconsistent_written_edges_stay_inconsistent_in_spane_json() -> None:
    definition = parse_definition(
        {
            "id": "w",
            "nodes": [
                {"id": "a", "type": "t", "inputs": [], "outputs": ["b"]},
                {"id": "b", "type": "t", "inputs": [], "outputs": []},
            ],
        }
    )
    with pytest.raises(WorkflowValidationError, match="does not list 'a' in its inputs"):
        compile_workflow(parse_definition(definition.to_spane_json()))


def test_bytes_are_accepted(order_text: str) -> None:
    assert parse_definition(order_text.encode()).id == "order-fulfillment"


def test_a_model_is_returned_as_is(order: WorkflowDefinition) -> None:
    assert parse_definition(order) is order


def test_invalid_json_text_is_a_validation_error() -> None:
    with pytest.raises(WorkflowValidationError, match="not valid JSON"):
        parse_definition('{"id": "x", "nodes": [')


def test_non_object_json_is_a_validation_error() -> None:
    with pytest.raises(WorkflowValidationError, match="must be an object, got list"):
        parse_definition("[1, 2]")


def test_name_defaults_to_the_id() -> None:
    assert parse_definition({"id": "named", "nodes": [{"id": "a", "type": "t"}]}).name == "named"


def test_models_are_frozen() -> None:
    node = NodeDefinition(id="a", type="t")
    with pytest.raises(ValueError, match="frozen"):
        node.type = "other"  # type: ignore[misc]


def test_node_lookup_by_id(order: WorkflowDefinition) -> None:
    assert order.node("wait-a-day").config == {"durationMinutes": 1440}
    with pytest.raises(KeyError):
        order.node("missing")


# Errors from pydantic become WorkflowValidationError naming what is wrong ----------


def _wf(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "wf", "nodes": [{"id": "a", "type": "t"}]}
    base.update(changes)
    return base


@pytest.mark.parametrize(
    "bad_id", ["Upper", "has space", "-leading-dash", "_under", "dots.not.allowed", "", "a" * 129]
)
def test_bad_workflow_id_is_refused_naming_id(bad_id: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        parse_definition(_wf(id=bad_id))
    assert "id:" in str(info.value)
    assert info.value.issues[0].message.startswith("id:")


@pytest.mark.parametrize("good_id", ["etl", "order-fulfillment", "v2_pipeline", "0day", "a"])
def test_good_workflow_ids(good_id: str) -> None:
    assert parse_definition(_wf(id=good_id)).id == good_id


@pytest.mark.parametrize("bad_node_id", ["has space", "a:b", "", "-x", "tab\there"])
def test_bad_node_ids_are_refused_naming_the_node(bad_node_id: str) -> None:
    with pytest.raises(WorkflowValidationError) as info:
        parse_definition(_wf(nodes=[{"id": bad_node_id, "type": "t"}]))
    assert f"node {bad_node_id!r}: id" in str(info.value)


def test_unknown_node_field_is_refused_naming_the_node() -> None:
    definition = _wf(
        nodes=[{"id": "a", "type": "t", "outputs": ["b"]}, {"id": "b", "type": "t", "nextNode": 1}]
    )
    with pytest.raises(WorkflowValidationError) as info:
        parse_definition(definition)
    message = str(info.value)
    assert "node 'b': nextNode" in message
    assert "Extra inputs are not permitted" in message
    assert info.value.workflow_id == "wf"


def test_unknown_top_level_field_is_refused() -> None:
    with pytest.raises(WorkflowValidationError, match="entryNode: Extra inputs"):
        parse_definition(_wf(entryNode="a"))


def test_unknown_retry_policy_field_is_refused() -> None:
    with pytest.raises(WorkflowValidationError, match=r"node 'a': retryPolicy\.maxRetries"):
        parse_definition(_wf(nodes=[{"id": "a", "type": "t", "retryPolicy": {"maxRetries": 3}}]))


def test_missing_node_type_names_the_node() -> None:
    with pytest.raises(WorkflowValidationError, match="node 'a': type: Field required"):
        parse_definition(_wf(nodes=[{"id": "a"}]))


def test_several_problems_are_reported_together() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        parse_definition(
            {"id": "Bad Id", "nodes": [{"id": "a", "type": "t", "timeoutMs": 0, "zzz": 1}]}
        )
    messages = [i.message for i in info.value.issues]
    assert len(messages) == 3
    assert any(m.startswith("id:") for m in messages)
    assert any("node 'a': timeoutMs" in m for m in messages)
    assert any("node 'a': zzz" in m for m in messages)


@pytest.mark.parametrize(
    "changes",
    [
        {"maxConcurrency": 0},
        {"priority": 11},
        {"priority": 0},
        {"delay": -1},
        {"nodes": [{"id": "a", "type": ""}]},
        {"nodes": [{"id": "a", "type": "t", "retryPolicy": {"maxAttempts": 0}}]},
        {"nodes": [{"id": "a", "type": "t", "retryPolicy": {"backoff": {"type": "linear"}}}]},
        {"nodes": [{"id": "a", "type": "t", "retryPolicy": {"backoff": {"delay": -1}}}]},
        {"nodes": [{"id": "a", "type": "t", "retryPolicy": {"backoff": {"jitter": 1.5}}}]},
    ],
)
def test_out_of_range_values_are_refused(changes: dict[str, Any]) -> None:
    with pytest.raises(WorkflowValidationError):
        parse_definition(_wf(**changes))


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        (
            {"when": datetime(2024, 1, 1)},
            "config.when has type datetime, which is not a JSON value",
        ),
        ({"x": {"y": [1, float("nan")]}}, "config.x.y[1] is nan, which is not a valid JSON"),
        ({"limit": float("inf")}, "config.limit is inf"),
        ({"tags": {"a", "b"}}, "config.tags has type set"),
        ({"f": print}, "config.f has type builtin_function_or_method"),
        ({"m": {1: "one"}}, "config.m has the key 1"),
    ],
)
def test_node_config_must_be_json(config: dict[str, Any], expected: str) -> None:
    with pytest.raises(WorkflowValidationError, match=re.escape(expected)) as info:
        parse_definition(_wf(nodes=[{"id": "a", "type": "t", "config": config}]))
    assert "node 'a': config" in str(info.value)


def test_metadata_must_be_json() -> None:
    with pytest.raises(WorkflowValidationError, match=r"metadata\.owner has type object"):
        parse_definition(_wf(metadata={"owner": object()}))


def test_json_config_values_are_kept_as_given() -> None:
    config = {"n": 1, "f": 1.5, "b": False, "none": None, "list": [1, "a", {"x": []}], "t": (1,)}
    node = parse_definition(_wf(nodes=[{"id": "a", "type": "t", "config": config}])).node("a")
    assert node.config == config


def test_error_carries_code_and_issues_in_details() -> None:
    with pytest.raises(WorkflowValidationError) as info:
        parse_definition(_wf(nodes=[{"id": "a b", "type": "t"}]))
    err = info.value
    assert err.code == "WORKFLOW_VALIDATION_FAILED"
    assert err.to_dict()["details"]["issues"] == [i.message for i in err.issues]
