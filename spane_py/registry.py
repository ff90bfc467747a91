"""``NodeRegistry``: node type -> executor, with per-type options."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from spane_py.context import ExecutionContext
from spane_py.definitions.builtins import BUILTIN_TYPES, CONFIG_MODELS, MAP, MapConfig
from spane_py.definitions.graph import WorkflowGraph
from spane_py.errors import (
    ConfigurationError,
    NodeNotRegisteredError,
    ValidationIssue,
    WorkflowValidationError,
)
from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit


@runtime_checkable
class NodeExecutor(Protocol):
    """An object whose ``execute`` coroutine runs a node (SPANE's ``INodeExecutor``)."""

    async def execute(self, ctx: ExecutionContext) -> Any: ...


ExecutorFunction = Callable[[ExecutionContext], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class RegisteredNode:
    type: str
    run: ExecutorFunction
    executor: object
    config_model: builtins.type[BaseModel] | None = None
    rate_limit: RateLimit | None = None
    circuit_breaker: CircuitBreakerPolicy | None = None

    def parse_config(self, config: dict[str, Any]) -> BaseModel | None:
        if self.config_model is None:
            return None
        return self.config_model.model_validate(config)


class NodeRegistry:
    def __init__(self) -> None:
        self._nodes: dict[str, RegisteredNode] = {}

    def register(
        self,
        node_type: str,
        executor: NodeExecutor | ExecutorFunction,
        *,
        config_model: type[BaseModel] | None = None,
        rate_limit: RateLimit | tuple[int, float] | None = None,
        circuit_breaker: CircuitBreakerPolicy | None = None,
        replace: bool = False,
    ) -> None:
        """Register ``executor`` for ``node_type``.

        ``executor`` is an object with ``async execute(ctx)`` or an async function of
        ``ctx``; it returns an ``ExecutionResult``, or any JSON value, which counts as a
        successful result with that data. ``config_model`` (a pydantic model) validates the
        ``config`` of every node of this type when a workflow using it is registered.

        ``rate_limit`` ``(max_calls, per_seconds)`` (or a ``RateLimit``) lets at most that
        many nodes of the type start in any window of ``per_seconds``, counted across every
        worker process of the engine's key prefix; a node over the limit is deferred, not
        failed, and gives its worker slot up while it waits. ``circuit_breaker`` (a
        ``CircuitBreakerPolicy``) stops calling the type's executor after repeated failures
        (see ``spane_py.traffic``). Register the same settings in every process.
        """
        if not isinstance(node_type, str) or not node_type.strip():
            raise ConfigurationError(f"node type must be a non-empty string, got {node_type!r}")
        if node_type in BUILTIN_TYPES:
            raise ConfigurationError(
                f"node type {node_type!r} is built in (the engine runs it); choose another name"
            )
        run = _as_callable(node_type, executor)
        if config_model is not None and not (
            isinstance(config_model, type) and issubclass(config_model, BaseModel)
        ):
            raise ConfigurationError(
                f"config_model for node type {node_type!r} must be a pydantic model class"
            )
        limit = (
            None
            if rate_limit is None
            else RateLimit.parse(rate_limit, what=f"rate_limit for node type {node_type!r}")
        )
        if circuit_breaker is not None and not isinstance(circuit_breaker, CircuitBreakerPolicy):
            raise ConfigurationError(
                f"circuit_breaker for node type {node_type!r} must be a CircuitBreakerPolicy, "
                f"got {type(circuit_breaker).__name__}"
            )
        existing = self._nodes.get(node_type)
        # ``==`` as well as ``is``: ``obj.method`` is a new bound method on every access.
        if (
            existing is not None
            and not replace
            and existing.executor is not executor
            and existing.executor != executor
        ):
            raise ConfigurationError(
                f"node type {node_type!r} is already registered to another executor "
                "(pass replace=True to replace it)"
            )
        self._nodes[node_type] = RegisteredNode(
            node_type, run, executor, config_model, limit, circuit_breaker
        )

    def get(self, node_type: str) -> RegisteredNode:
        try:
            return self._nodes[node_type]
        except KeyError:
            raise NodeNotRegisteredError(
                f"no executor is registered for node type {node_type!r}"
            ) from None

    def find(self, node_type: str) -> RegisteredNode | None:
        """The registration of ``node_type``, or None (built-in or unknown)."""
        return self._nodes.get(node_type)

    def has(self, node_type: str) -> bool:
        return node_type in self._nodes or node_type in BUILTIN_TYPES

    def types(self) -> list[str]:
        return sorted(self._nodes)

    def __contains__(self, node_type: object) -> bool:
        return node_type in self._nodes or node_type in BUILTIN_TYPES

    def check_workflow(self, graph: WorkflowGraph) -> None:
        """Every node's type is registered and its config matches the type's model."""
        missing = [
            ValidationIssue(
                f"node {n.id!r} has type {n.type!r}, which has no registered executor "
                f"(registered: {', '.join(self.types()) or 'none'})",
                n.id,
            )
            for n in graph.definition.nodes
            if n.type not in self._nodes and n.type not in BUILTIN_TYPES
        ]
        if missing:
            raise NodeNotRegisteredError(issues=missing, workflow_id=graph.workflow_id)
        issues: list[ValidationIssue] = []
        for node in graph.definition.nodes:
            try:
                builtin = CONFIG_MODELS.get(node.type)
                if builtin is None:
                    self._nodes[node.type].parse_config(node.config)
                    continue
                parsed = builtin.model_validate(node.config)
                if node.type == MAP:
                    assert isinstance(parsed, MapConfig)
                    issue = self._map_issue(node.id, parsed)
                    if issue is not None:
                        issues.append(issue)
            except ValidationError as exc:
                for err in exc.errors():
                    where = ".".join(str(p) for p in err["loc"]) or "config"
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} ({node.type}): config.{where}: {err['msg']}",
                            node.id,
                        )
                    )
        if issues:
            raise WorkflowValidationError(issues=issues, workflow_id=graph.workflow_id)

    def _map_issue(self, node_id: str, config: MapConfig) -> ValidationIssue | None:
        if config.node_type in BUILTIN_TYPES:
            return ValidationIssue(
                f"node {node_id!r} (map): config.nodeType {config.node_type!r} is a built-in "
                "type; a map runs a registered executor",
                node_id,
            )
        if config.node_type not in self._nodes:
            return ValidationIssue(
                f"node {node_id!r} (map): config.nodeType {config.node_type!r} has no "
                "registered executor",
                node_id,
            )
        registered = self._nodes[config.node_type]
        try:
            registered.parse_config(config.config)
        except ValidationError as exc:
            return ValidationIssue(
                f"node {node_id!r} (map): config.config for {config.node_type!r}: "
                f"{exc.errors()[0]['msg']}",
                node_id,
            )
        return None


def _as_callable(node_type: str, executor: object) -> ExecutorFunction:
    if isinstance(executor, type):
        # The class itself would "work" with execute(ctx) binding ctx to self.
        raise ConfigurationError(
            f"executor for node type {node_type!r} is the class {executor.__name__}; "
            f"register an instance ({executor.__name__}())"
        )
    execute = getattr(executor, "execute", None)
    if execute is not None and not inspect.isfunction(executor):
        if not inspect.iscoroutinefunction(execute):
            raise ConfigurationError(
                f"executor for node type {node_type!r}: execute() must be a coroutine "
                "function (async def)"
            )
        return execute  # type: ignore[no-any-return]
    if inspect.iscoroutinefunction(executor):
        return executor
    if callable(executor) and inspect.iscoroutinefunction(
        getattr(executor, "__call__", None)  # noqa: B004
    ):
        return executor
    raise ConfigurationError(
        f"executor for node type {node_type!r} must be an async function or an object "
        f"with an async execute(ctx) method, got {type(executor).__name__}"
    )
