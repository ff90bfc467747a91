"""NodeRegistry: what can be registered, replacing, and checking a workflow against it."""

from __future__ import annotations

import functools
import inspect
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import BaseModel, ConfigDict, Field

from spane_py.context import ExecutionContext
from spane_py.definitions.graph import WorkflowGraph, compile_workflow
from spane_py.definitions.loading import parse_definition
from spane_py.definitions.models import NodeDefinition
from spane_py.errors import (
    ConfigurationError,
    NodeNotRegisteredError,
    NonRetryableError,
    WorkflowValidationError,
)
from spane_py.registry import NodeExecutor, NodeRegistry
from spane_py.results import ExecutionResult, success_result


def ctx_for(node_type: str = "t", input_data: Any = None, **config: Any) -> ExecutionContext:
    return ExecutionContext(
        workflow_id="wf",
        execution_id="e1",
        node=NodeDefinition(id="n", type=node_type, config=config),
        input_data=input_data,
        records={},
    )


def graph_of(*nodes: tuple[str, str, dict[str, Any]]) -> WorkflowGraph:
    return compile_workflow(
        parse_definition(
            {
                "id": "wf",
                "nodes": [{"id": i, "type": t, "config": c} for i, t, c in nodes],
            }
        )
    )


async def echo(ctx: ExecutionContext) -> Any:
    return ctx.input_data


class Doubler:
    def __init__(self) -> None:
        self.calls = 0

    async def execute(self, ctx: ExecutionContext) -> ExecutionResult:
        self.calls += 1
        return success_result(ctx.input_data * 2)


class SyncExecute:
    def execute(self, ctx: ExecutionContext) -> ExecutionResult:
        return success_result(threading.current_thread().name)


class SyncCallable:
    def __call__(self, ctx: ExecutionContext) -> str:
        return threading.current_thread().name


class AsyncCallable:
    async def __call__(self, ctx: ExecutionContext) -> str:
        return "called"


class HttpConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str
    method: str = "GET"
    timeout_s: float = Field(10.0, gt=0)


# Registering ------------------------------------------------------------------------


async def test_register_an_async_function() -> None:
    registry = NodeRegistry()
    registry.register("echo", echo)
    registered = registry.get("echo")
    assert registered.type == "echo"
    assert registered.run is echo
    assert registered.executor is echo
    assert registered.config_model is None
    assert await registered.run(ctx_for(input_data={"a": 1})) == {"a": 1}
    assert registry.has("echo")
    assert "echo" in registry
    assert "other" not in registry
    assert registry.types() == ["echo"]


async def test_register_an_object_with_async_execute() -> None:
    registry = NodeRegistry()
    doubler = Doubler()
    registry.register("double", doubler)
    result = await registry.get("double").run(ctx_for(input_data=21))
    assert result == success_result(42)
    assert doubler.calls == 1
    assert isinstance(doubler, NodeExecutor)


async def test_register_an_async_callable_object() -> None:
    registry = NodeRegistry()
    registry.register("callable", AsyncCallable())
    assert await registry.get("callable").run(ctx_for()) == "called"


async def test_register_a_partial_of_an_async_function() -> None:
    async def scaled(ctx: ExecutionContext, factor: int) -> int:
        return int(ctx.input_data) * factor

    registry = NodeRegistry()
    registry.register("scaled", functools.partial(scaled, factor=3))
    assert await registry.get("scaled").run(ctx_for(input_data=2)) == 6


async def test_a_sync_function_runs_on_a_node_thread() -> None:
    def sync(ctx: ExecutionContext) -> str:
        return threading.current_thread().name

    registry = NodeRegistry()
    registry.register("sync", sync)
    registered = registry.get("sync")
    assert registered.executor is sync
    assert registered.run is not sync
    assert inspect.iscoroutinefunction(registered.run)
    assert (await registered.run(ctx_for())).startswith("spane-node")
    registry.register("sync", sync)  # the same executor again: no conflict


async def test_an_object_with_sync_execute_runs_on_a_node_thread() -> None:
    registry = NodeRegistry()
    registry.register("sync", SyncExecute())
    result = await registry.get("sync").run(ctx_for())
    assert isinstance(result, ExecutionResult)
    assert result.data.startswith("spane-node")


async def test_a_sync_callable_object_and_a_partial_run_on_a_node_thread() -> None:
    def scaled(ctx: ExecutionContext, factor: int) -> int:
        return int(ctx.input_data) * factor

    registry = NodeRegistry()
    registry.register("callable", SyncCallable())
    registry.register("scaled", functools.partial(scaled, factor=3))
    assert (await registry.get("callable").run(ctx_for())).startswith("spane-node")
    assert await registry.get("scaled").run(ctx_for(input_data=2)) == 6


async def test_a_sync_function_returning_a_coroutine_fails_at_call_time() -> None:
    registry = NodeRegistry()
    registry.register("lazy", lambda ctx: echo(ctx))  # a def that forgot to be async
    with pytest.raises(NonRetryableError, match=r"'lazy'.*returned coroutine.*async def"):
        await registry.get("lazy").run(ctx_for())


def test_a_generator_function_is_refused() -> None:
    def rows(ctx: ExecutionContext) -> Iterator[int]:
        yield 1

    with pytest.raises(ConfigurationError, match="generator function"):
        NodeRegistry().register("rows", rows)


def test_an_execute_attribute_that_is_not_a_method_is_refused() -> None:
    class Odd:
        execute = 42

    with pytest.raises(ConfigurationError, match="execute attribute is not a method"):
        NodeRegistry().register("odd", Odd())  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [42, "echo", None, object()])
def test_non_callable_is_refused(value: Any) -> None:
    with pytest.raises(ConfigurationError, match="must be a function of ctx"):
        NodeRegistry().register("bad", value)


def test_a_class_instead_of_an_instance_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"register an instance \(Doubler\(\)\)"):
        NodeRegistry().register("double", Doubler)  # type: ignore[arg-type]


@pytest.mark.parametrize("node_type", ["", "   "])
def test_empty_node_type_is_refused(node_type: str) -> None:
    with pytest.raises(ConfigurationError, match="non-empty string"):
        NodeRegistry().register(node_type, echo)


def test_refused_registration_leaves_the_registry_unchanged() -> None:
    registry = NodeRegistry()
    registry.register("t", echo)
    with pytest.raises(ConfigurationError):
        registry.register("t", 42, replace=True)  # type: ignore[arg-type]
    assert registry.get("t").executor is echo


def test_re_registering_another_executor_is_refused() -> None:
    async def other(ctx: ExecutionContext) -> None:
        return None

    registry = NodeRegistry()
    registry.register("t", echo)
    with pytest.raises(ConfigurationError, match=r"already registered.*replace=True"):
        registry.register("t", other)
    assert registry.get("t").executor is echo


def test_re_registering_with_replace() -> None:
    async def other(ctx: ExecutionContext) -> None:
        return None

    registry = NodeRegistry()
    registry.register("t", echo)
    registry.register("t", other, replace=True)
    assert registry.get("t").executor is other


def test_re_registering_the_same_executor_is_a_no_op() -> None:
    registry = NodeRegistry()
    doubler = Doubler()
    registry.register("t", doubler)
    registry.register("t", doubler)
    registry.register("f", echo)
    registry.register("f", echo)
    assert registry.get("t").executor is doubler


def test_re_registering_the_same_bound_method() -> None:
    doubler = Doubler()
    registry = NodeRegistry()
    registry.register("t", doubler.execute)
    registry.register("t", doubler.execute)  # a new bound-method object, the same executor
    with pytest.raises(ConfigurationError, match="already registered"):
        registry.register("t", Doubler().execute)


def test_get_unknown_type() -> None:
    with pytest.raises(NodeNotRegisteredError, match="no executor is registered for node type 'x'"):
        NodeRegistry().get("x")


def test_config_model_must_be_a_pydantic_model() -> None:
    with pytest.raises(ConfigurationError, match="must be a pydantic model class"):
        NodeRegistry().register("t", echo, config_model=dict)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="must be a pydantic model class"):
        NodeRegistry().register(
            "t",
            echo,
            config_model=HttpConfig(url="u"),  # type: ignore[arg-type]
        )


# check_workflow ---------------------------------------------------------------------


def test_check_workflow_names_node_and_type_of_missing_executors() -> None:
    registry = NodeRegistry()
    registry.register("http", echo)
    graph = graph_of(("fetch", "http", {}), ("mail", "email", {}), ("sms", "sms", {}))
    with pytest.raises(NodeNotRegisteredError) as info:
        registry.check_workflow(graph)
    err = info.value
    assert isinstance(err, WorkflowValidationError)
    assert err.code == "NODE_NOT_REGISTERED"
    assert err.workflow_id == "wf"
    message = str(err)
    assert "node 'mail' has type 'email', which has no registered executor" in message
    assert "node 'sms' has type 'sms'" in message
    assert "registered: http" in message
    assert "fetch" not in message
    assert [i.node_id for i in err.issues] == ["mail", "sms"]


def test_check_workflow_passes_when_all_types_are_registered() -> None:
    registry = NodeRegistry()
    registry.register("http", echo)
    registry.register("email", Doubler())
    registry.check_workflow(graph_of(("fetch", "http", {}), ("mail", "email", {})))


def test_check_workflow_with_an_empty_registry() -> None:
    with pytest.raises(NodeNotRegisteredError, match=r"registered: none"):
        NodeRegistry().check_workflow(graph_of(("a", "t", {})))


def test_config_model_errors_name_node_and_field() -> None:
    registry = NodeRegistry()
    registry.register("http", echo, config_model=HttpConfig)
    graph = graph_of(
        ("good", "http", {"url": "https://x"}),
        ("no-url", "http", {"method": "POST"}),
        ("bad-timeout", "http", {"url": "u", "timeout_s": 0}),
        ("typo", "http", {"url": "u", "metod": "GET"}),
    )
    with pytest.raises(WorkflowValidationError) as info:
        registry.check_workflow(graph)
    err = info.value
    assert not isinstance(err, NodeNotRegisteredError)
    message = str(err)
    assert "node 'no-url' (http): config.url: Field required" in message
    assert "node 'bad-timeout' (http): config.timeout_s: Input should be greater than 0" in (
        message
    )
    assert "node 'typo' (http): config.metod: Extra inputs are not permitted" in message
    assert "'good'" not in message
    assert {i.node_id for i in err.issues} == {"no-url", "bad-timeout", "typo"}


def test_config_model_does_not_see_a_lifted_retry_policy() -> None:
    registry = NodeRegistry()
    registry.register("http", echo, config_model=HttpConfig)
    graph = graph_of(("fetch", "http", {"url": "u", "retryPolicy": {"maxAttempts": 3}}))
    registry.check_workflow(graph)  # HttpConfig forbids extra keys
    assert graph.nodes["fetch"].effective_retry_policy.max_attempts == 3


def test_parse_config_returns_the_model() -> None:
    registry = NodeRegistry()
    registry.register("http", echo, config_model=HttpConfig)
    parsed = registry.get("http").parse_config({"url": "u", "timeout_s": "2.5"})
    assert parsed == HttpConfig(url="u", timeout_s=2.5)
    registry.register("plain", Doubler())
    assert registry.get("plain").parse_config({"anything": 1}) is None
