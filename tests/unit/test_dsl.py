"""The Python DSL: Workflow, @wf.node, wf.add, and the executors it adapts."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel

from spane_py import ExecutionContext as PublicExecutionContext
from spane_py.context import ExecutionContext
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import (
    NodeDefinition,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
)
from spane_py.dsl import Workflow
from spane_py.errors import ConfigurationError, NonRetryableError, WorkflowValidationError
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult, success_result


class Order(BaseModel):
    id: int
    amount: float


class Receipt(BaseModel):
    order_id: int
    total: float


def make_ctx(wf: Workflow, node_id: str, input_data: Any = None) -> ExecutionContext:
    node = wf.definition().node(node_id)
    return ExecutionContext(
        workflow_id=wf.id,
        execution_id="exec-1",
        node=node,
        input_data=input_data,
        records={},
    )


async def run_node(wf: Workflow, node_id: str, input_data: Any = None) -> Any:
    registry = NodeRegistry()
    wf.register_nodes(registry)
    node = wf.definition().node(node_id)
    return await registry.get(node.type).run(make_ctx(wf, node_id, input_data))


# Building definitions ---------------------------------------------------------------


def test_nodes_and_edges_from_decorators() -> None:
    wf = Workflow("etl")

    @wf.node()
    async def extract(data: dict[str, Any]) -> list[int]:
        """Read the rows."""
        return list(data["rows"])

    @wf.node(after=[extract])
    async def transform(rows: list[int]) -> list[int]:
        return [r * 2 for r in rows]

    @wf.node(after=["transform"])
    async def load(rows: list[int]) -> int:
        return len(rows)

    definition = wf.definition()
    assert definition.id == "etl"
    assert definition.name == "etl"
    assert [n.id for n in definition.nodes] == ["extract", "transform", "load"]
    assert [n.type for n in definition.nodes] == ["etl.extract", "etl.transform", "etl.load"]
    assert definition.node("transform").inputs == ["extract"]
    assert definition.node("load").inputs == ["transform"]
    assert definition.node("extract").description == "Read the rows."
    graph = compile_workflow(definition)
    assert graph.entry_nodes == ("extract",)
    assert graph.children["extract"] == ("transform",)
    assert graph.children["transform"] == ("load",)


def test_decorator_returns_the_function_unchanged() -> None:
    wf = Workflow("w")

    async def step() -> int:
        return 1

    assert wf.node()(step) is step
    assert wf.node(id="again")(step) is step


def test_decorator_without_parentheses() -> None:
    wf = Workflow("w")

    @wf.node
    async def only() -> None:
        return None

    assert [n.id for n in wf.definition().nodes] == ["only"]


def test_explicit_node_ids_and_options() -> None:
    wf = Workflow("w", name="My workflow", description="d", max_concurrency=3)
    policy = RetryPolicy(max_attempts=5)

    @wf.node(id="fetch-page", retry=policy, timeout_ms=1500, config={"url": "u"}, name="Fetch")
    async def fetch() -> str:
        return "html"

    @wf.node(after=[fetch])
    async def parse(html: str) -> int:
        return len(html)

    definition = wf.definition()
    node = definition.node("fetch-page")
    assert node.type == "w.fetch-page"
    assert node.retry_policy == policy
    assert node.timeout_ms == 1500
    assert node.config == {"url": "u"}
    assert node.name == "Fetch"
    assert definition.node("parse").inputs == ["fetch-page"]  # after=fn uses the node id
    assert definition.name == "My workflow"
    assert definition.description == "d"
    assert definition.max_concurrency == 3


def test_retry_policy_in_dsl_config_is_lifted() -> None:
    wf = Workflow("w")

    @wf.node(config={"retryPolicy": {"maxAttempts": 6}, "url": "u"})
    async def fetch() -> None:
        return None

    node = wf.definition().node("fetch")
    assert node.retry_policy == RetryPolicy(max_attempts=6)
    assert node.config == {"url": "u"}


def test_fan_out_fan_in() -> None:
    wf = Workflow("diamond")

    @wf.node()
    async def a() -> int:
        return 1

    @wf.node(after=[a])
    async def b(x: int) -> int:
        return x

    @wf.node(after=[a])
    async def c(x: int) -> int:
        return x

    @wf.node(after=[b, c])
    async def d(parents: dict[str, int]) -> int:
        return sum(parents.values())

    graph = compile_workflow(wf.definition())
    assert graph.parents["d"] == ("b", "c")
    assert graph.children["a"] == ("b", "c")


def test_after_accepts_a_single_reference() -> None:
    wf = Workflow("w")

    @wf.node()
    async def a() -> None:
        return None

    @wf.node(after=a)
    async def b() -> None:
        return None

    @wf.node(after="b")
    async def c() -> None:
        return None

    definition = wf.definition()
    assert definition.node("b").inputs == ["a"]
    assert definition.node("c").inputs == ["b"]


def test_add_registered_types_with_after() -> None:
    wf = Workflow("w")

    @wf.node()
    async def start() -> dict[str, int]:
        return {"n": 1}

    wait = wf.add("wait", "delay", after=[start], config={"duration": 1000})
    assert wait == "wait"
    wf.add("child", "sub-workflow", after=[wait], config={"workflowId": "other"})

    @wf.node(after=["child"])
    async def finish(data: Any) -> Any:
        return data

    definition = wf.definition()
    assert definition.node("wait").type == "delay"
    assert definition.node("wait").inputs == ["start"]
    assert definition.node("wait").config == {"duration": 1000}
    assert definition.node("child").inputs == ["wait"]
    assert definition.node("finish").inputs == ["child"]
    registry = NodeRegistry()
    wf.register_nodes(registry)
    assert registry.types() == ["w.finish", "w.start"]  # wf.add registers nothing


def test_entry_node_and_triggers() -> None:
    async def main() -> None:
        return None

    wf = Workflow(
        "w",
        entry="main",
        triggers=[
            WebhookTrigger(path="hooks/w"),
            ScheduleTrigger(cron="0 * * * *", timezone="Europe/Paris"),
        ],
        metadata={"team": "data"},
    )
    wf.node()(main)

    @wf.node()
    async def side() -> None:
        return None

    definition = wf.definition()
    assert definition.entry_node_id == "main"
    assert definition.metadata == {"team": "data"}
    assert definition.to_spane_json()["triggers"] == [
        {"type": "webhook", "config": {"path": "hooks/w", "method": "POST"}},
        {"type": "schedule", "config": {"cron": "0 * * * *", "timezone": "Europe/Paris"}},
    ]
    assert compile_workflow(definition).unreachable == ("side",)


def test_entry_given_as_a_function() -> None:
    async def first() -> None:
        return None

    wf = Workflow("w", entry=first)
    wf.node()(first)
    assert wf.definition().entry_node_id == "first"


def test_definition_is_a_plain_definition_that_round_trips() -> None:
    wf = Workflow("w")

    @wf.node(retry=RetryPolicy(max_attempts=2))
    async def a() -> int:
        return 1

    @wf.node(after=[a])
    async def b(x: int) -> int:
        return x

    definition = wf.definition()
    # a dump loads back as the same definition (the derived side stays unwritten)
    assert type(definition).model_validate(definition.model_dump()) == definition
    # SPANE JSON carries both sides of every edge, and compiles to the same graph
    spane = definition.to_spane_json()
    assert [(n["id"], n["inputs"], n["outputs"]) for n in spane["nodes"]] == [
        ("a", [], ["b"]),
        ("b", ["a"], []),
    ]
    again = type(definition).model_validate(spane)
    assert compile_workflow(again).content_hash == compile_workflow(definition).content_hash


# Refusals ---------------------------------------------------------------------------


async def test_a_plain_def_runs_on_a_node_thread_with_its_input_checked() -> None:
    wf = Workflow("w")
    seen: list[str] = []

    @wf.node()
    def sync_step(order: Order, ctx: ExecutionContext) -> Receipt:
        seen.append(threading.current_thread().name)
        ctx.log("info", "priced", order=order.id)
        return Receipt(order_id=order.id, total=order.amount * 2)

    assert sync_step.__name__ == "sync_step"  # the decorator returns the function itself
    registry = NodeRegistry()
    wf.register_nodes(registry)
    assert registry.get("w.sync_step").run.__name__ == "in_thread_dsl_sync_step"
    ctx = make_ctx(wf, "sync_step", {"id": 7, "amount": "1.5"})
    assert await registry.get("w.sync_step").run(ctx) == {"order_id": 7, "total": 3.0}
    assert len(seen) == 1
    assert seen[0].startswith("spane-node")
    assert [log.message for log in ctx.drain_logs()] == ["priced"]
    with pytest.raises(NonRetryableError, match="does not match its type"):
        await run_node(wf, "sync_step", {"id": "x"})


async def test_a_plain_def_returning_a_coroutine_fails_its_node() -> None:
    wf = Workflow("w")

    async def later() -> int:
        return 1

    @wf.node()
    def forgot_async() -> Any:
        return later()

    with pytest.raises(NonRetryableError, match="declare it async def"):
        await run_node(wf, "forgot_async")


def test_a_generator_function_is_refused() -> None:
    wf = Workflow("w")

    def rows() -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigurationError, match="'rows' is a generator function"):
        wf.node()(rows)
    # the workflow is untouched
    with pytest.raises(WorkflowValidationError, match="no nodes"):
        compile_workflow(wf.definition())


def test_duplicate_node_id_is_refused() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step() -> None:
        return None

    async def other() -> None:
        return None

    with pytest.raises(ConfigurationError, match="already has a node 'step'"):
        wf.node(id="step")(other)
    with pytest.raises(ConfigurationError, match="already has a node 'step'"):
        wf.add("step", "delay")


def test_after_naming_an_unknown_function_is_refused() -> None:
    wf = Workflow("w")

    async def not_a_node() -> None:
        return None

    async def child() -> None:
        return None

    with pytest.raises(ConfigurationError, match="'not_a_node', which is not a node of workflow"):
        wf.node(after=[not_a_node])(child)
    with pytest.raises(ConfigurationError, match="not a node"):
        wf.add("x", "delay", after=[not_a_node])


def test_after_a_function_of_another_workflow_is_refused() -> None:
    one, two = Workflow("one"), Workflow("two")

    @one.node()
    async def shared() -> None:
        return None

    async def child() -> None:
        return None

    with pytest.raises(ConfigurationError, match="not a node of workflow 'two'"):
        two.node(after=[shared])(child)


def test_after_a_function_used_by_two_nodes_is_ambiguous() -> None:
    wf = Workflow("w")

    async def fetch() -> None:
        return None

    wf.node(id="fetch-a")(fetch)
    wf.node(id="fetch-b")(fetch)

    async def child() -> None:
        return None

    with pytest.raises(ConfigurationError, match="several nodes"):
        wf.node(after=[fetch])(child)
    wf.node(after=["fetch-a", "fetch-b"])(child)
    assert wf.definition().node("child").inputs == ["fetch-a", "fetch-b"]


def test_after_an_unknown_string_is_caught_by_validation() -> None:
    wf = Workflow("w")

    @wf.node(after=["ghost"])
    async def child() -> None:
        return None

    with pytest.raises(WorkflowValidationError, match="no node 'ghost'"):
        compile_workflow(wf.definition())


@pytest.mark.parametrize("bad", ["ETL", "has space", "-x", "a.b", ""])
def test_invalid_workflow_id_is_refused_at_once(bad: str) -> None:
    with pytest.raises(WorkflowValidationError, match="id:") as info:
        Workflow(bad)
    assert "not a valid workflow id" in str(info.value)


@pytest.mark.parametrize("bad", ["has space", "a:b", "-x"])
def test_invalid_node_id_is_refused_at_once(bad: str) -> None:
    wf = Workflow("w")

    async def step() -> None:
        return None

    with pytest.raises(ConfigurationError, match="not a valid node id"):
        wf.node(id=bad)(step)
    with pytest.raises(ConfigurationError, match="not a valid node id"):
        wf.add(bad, "delay")


def test_bad_option_values_become_a_validation_error_naming_the_node() -> None:
    wf = Workflow("w")

    @wf.node(timeout_ms=0)
    async def slow() -> None:
        return None

    with pytest.raises(WorkflowValidationError, match="node 'slow': timeout_ms"):
        wf.definition()


def test_too_many_required_parameters_are_refused_at_decoration() -> None:
    wf = Workflow("w")

    async def three(a: int, b: int, c: int) -> None:
        return None

    with pytest.raises(ConfigurationError, match="more than an input and a context"):
        wf.node()(three)


def test_extra_parameters_with_defaults_are_fine() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step(data: int, ctx: ExecutionContext, scale: int = 10) -> int:
        return data * scale

    assert [n.id for n in wf.definition().nodes] == ["step"]


# The adapted executors ------------------------------------------------------------


async def test_typed_input_is_validated_and_coerced() -> None:
    wf = Workflow("w")

    @wf.node()
    async def total(order: Order) -> float:
        assert isinstance(order, Order)
        return order.amount * 2

    assert await run_node(wf, "total", {"id": 1, "amount": "2.5"}) == 5.0


async def test_mismatching_input_raises_non_retryable_error() -> None:
    wf = Workflow("w")

    @wf.node()
    async def total(order: Order) -> float:  # pragma: no cover - must not run
        raise AssertionError("ran with bad input")

    with pytest.raises(NonRetryableError) as info:
        await run_node(wf, "total", {"id": "not-a-number"})
    message = str(info.value)
    assert "the input of node 'total' does not match its type" in message
    assert "id:" in message
    assert "amount: Field required" in message
    assert info.value.node_id == "total"
    assert info.value.execution_id == "exec-1"


async def test_builtin_generic_annotations_are_validated() -> None:
    wf = Workflow("w")

    @wf.node()
    async def count(rows: list[int]) -> int:
        return sum(rows)

    assert await run_node(wf, "count", [1, "2", 3]) == 6
    with pytest.raises(NonRetryableError, match=r"1: Input should be a valid integer"):
        await run_node(wf, "count", [1, "two"])
    with pytest.raises(NonRetryableError, match="input: Input should be a valid list"):
        await run_node(wf, "count", None)


async def test_unannotated_and_any_inputs_pass_through() -> None:
    wf = Workflow("w")

    @wf.node()
    async def raw(data):  # type: ignore[no-untyped-def]
        return data

    @wf.node()
    async def anything(data: Any) -> Any:
        return data

    value = {"x": [1, "y", None]}
    assert await run_node(wf, "raw", value) == value
    assert await run_node(wf, "anything", "text") == "text"


async def test_ctx_injected_by_name() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step(data, ctx):  # type: ignore[no-untyped-def]
        return {"data": data, "node": ctx.node_id, "execution": ctx.execution_id}

    assert await run_node(wf, "step", 5) == {"data": 5, "node": "step", "execution": "exec-1"}


async def test_ctx_injected_by_annotation_under_any_name() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step(context: ExecutionContext, payload: int) -> list[Any]:
        return [context.workflow_id, payload]

    assert await run_node(wf, "step", "7") == ["w", 7]


async def test_ctx_alone() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step(ctx: PublicExecutionContext) -> Any:
        ctx.log("info", "hello", n=1)
        logs = ctx.drain_logs()
        return [ctx.input_data, logs[0].message, logs[0].fields["n"]]

    assert await run_node(wf, "step", {"a": 1}) == [{"a": 1}, "hello", 1]


async def test_zero_argument_function() -> None:
    wf = Workflow("w")
    calls: list[int] = []

    @wf.node()
    async def tick() -> str:
        calls.append(1)
        return "tock"

    assert await run_node(wf, "tick", {"ignored": True}) == "tock"
    assert calls == [1]


async def test_ctx_with_unresolvable_annotations_elsewhere_is_still_found() -> None:
    # Under `from __future__ import annotations` a model defined in a function cannot be
    # resolved later; the context parameter must still be recognised.
    class Local(BaseModel):
        x: int

    wf = Workflow("w")

    @wf.node()
    async def step(item: Local, ctx: ExecutionContext) -> Any:
        return [item, ctx.node_id]

    assert await run_node(wf, "step", {"x": 1}) == [{"x": 1}, "step"]


async def test_positional_only_parameters() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step(data: int, ctx: ExecutionContext, /) -> list[Any]:
        return [data, ctx.node_id]

    assert await run_node(wf, "step", "3") == [3, "step"]


async def test_pydantic_model_return_value_is_dumped_to_json() -> None:
    wf = Workflow("w")

    @wf.node()
    async def pay(order: Order) -> Receipt:
        return Receipt(order_id=order.id, total=order.amount)

    out = await run_node(wf, "pay", {"id": 9, "amount": 1.5})
    assert out == {"order_id": 9, "total": 1.5}
    assert type(out) is dict


async def test_models_inside_containers_are_dumped() -> None:
    wf = Workflow("w")

    @wf.node()
    async def many() -> dict[str, Any]:
        return {"receipts": [Receipt(order_id=1, total=2.0)], "n": 1}

    assert await run_node(wf, "many") == {"receipts": [{"order_id": 1, "total": 2.0}], "n": 1}


async def test_execution_result_is_passed_through_with_model_data_dumped() -> None:
    wf = Workflow("w")

    @wf.node()
    async def choose() -> ExecutionResult:
        return success_result(Receipt(order_id=2, total=3.0), next_nodes=["yes"])

    @wf.node()
    async def plain() -> ExecutionResult:
        return ExecutionResult(success=False, error="nope")

    result = await run_node(wf, "choose")
    assert isinstance(result, ExecutionResult)
    assert result.success is True
    assert result.data == {"order_id": 2, "total": 3.0}
    assert list(result.next_nodes or []) == ["yes"]
    failed = await run_node(wf, "plain")
    assert failed == ExecutionResult(success=False, error="nope")


async def test_errors_from_the_function_propagate() -> None:
    wf = Workflow("w")

    @wf.node()
    async def boom() -> None:
        raise ValueError("broken")

    with pytest.raises(ValueError, match="broken"):
        await run_node(wf, "boom")


def test_register_nodes_registers_one_type_per_function() -> None:
    wf = Workflow("etl")

    @wf.node()
    async def extract() -> int:
        return 1

    @wf.node(after=[extract])
    async def load(x: int) -> int:
        return x

    registry = NodeRegistry()
    wf.register_nodes(registry)
    assert registry.types() == ["etl.extract", "etl.load"]
    # registering again (a worker re-importing the module) is fine
    wf.register_nodes(registry)
    registry.check_workflow(compile_workflow(wf.definition()))


def test_adapted_executor_name() -> None:
    wf = Workflow("w")

    @wf.node()
    async def step() -> None:
        return None

    registry = NodeRegistry()
    wf.register_nodes(registry)
    assert registry.get("w.step").run.__name__ == "dsl_step"


def test_node_definition_is_what_the_context_gets() -> None:
    wf = Workflow("w")

    @wf.node(config={"k": "v"})
    async def step() -> None:
        return None

    ctx = make_ctx(wf, "step")
    assert isinstance(ctx.node, NodeDefinition)
    assert ctx.node_config == {"k": "v"}
