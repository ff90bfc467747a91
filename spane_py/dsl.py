"""The Python DSL: workflows in code that compile to the same ``WorkflowDefinition``.

    wf = Workflow("etl")

    @wf.node()
    async def extract(data: dict) -> list[int]:
        return data["rows"]

    @wf.node(after=[extract], retry=RetryPolicy(max_attempts=3))
    async def load(rows: list[int], ctx: ExecutionContext) -> int:
        ctx.log("info", "loading", rows=len(rows))
        return len(rows)

A node function is ``async``; it may take the node's input (validated against its type
annotation when it has one), the ``ExecutionContext`` (a parameter named ``ctx`` or
annotated with the type), both, or neither. It returns an ``ExecutionResult`` or any JSON
value; a pydantic model is dumped to JSON. Each function becomes a node type named
``"<workflow id>.<node id>"``, registered when the workflow is.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, TypeAdapter, ValidationError

from spane_py.context import ExecutionContext
from spane_py.definitions.models import (
    NodeDefinition,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
)
from spane_py.errors import ConfigurationError, NonRetryableError
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult

NodeFunction = Callable[..., Awaitable[Any]]
NodeRef = NodeFunction | str


@dataclass(slots=True)
class _NodeSpec:
    id: str
    type: str
    after: list[str]
    config: dict[str, Any] = field(default_factory=dict)
    retry: RetryPolicy | None = None
    timeout_ms: int | None = None
    name: str | None = None
    description: str | None = None
    function: NodeFunction | None = None


class Workflow:
    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        entry: NodeRef | None = None,
        max_concurrency: int | None = None,
        triggers: Sequence[ScheduleTrigger | WebhookTrigger] = (),
        metadata: dict[str, Any] | None = None,
    ) -> None:
        self.id = id
        self.name = name
        self.description = description
        self._entry = entry
        self.max_concurrency = max_concurrency
        self.triggers = list(triggers)
        self.metadata = dict(metadata or {})
        self._specs: dict[str, _NodeSpec] = {}
        self._ids_by_function: dict[int, str] = {}

    def node(
        self,
        fn: NodeFunction | None = None,
        *,
        id: str | None = None,
        after: Sequence[NodeRef] = (),
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
    ) -> Any:
        """Decorator: make an async function a node. ``after`` lists its parents."""

        def decorate(function: NodeFunction) -> NodeFunction:
            if not inspect.iscoroutinefunction(function):
                raise ConfigurationError(
                    f"node function {getattr(function, '__name__', function)!r} must be "
                    "async (async def)"
                )
            node_id = id or function.__name__
            self._add(
                _NodeSpec(
                    id=node_id,
                    type=f"{self.id}.{node_id}",
                    after=self._resolve(after),
                    config=dict(config or {}),
                    retry=retry,
                    timeout_ms=timeout_ms,
                    name=name,
                    description=inspect.getdoc(function),
                    function=function,
                )
            )
            self._ids_by_function[_key(function)] = node_id
            return function

        return decorate(fn) if fn is not None else decorate

    def add(
        self,
        id: str,
        type: str,
        *,
        after: Sequence[NodeRef] = (),
        config: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        name: str | None = None,
    ) -> str:
        """Add a node of an already registered type (a built-in, or your own executor)."""
        self._add(
            _NodeSpec(
                id=id,
                type=type,
                after=self._resolve(after),
                config=dict(config or {}),
                retry=retry,
                timeout_ms=timeout_ms,
                name=name,
            )
        )
        return id

    def _add(self, spec: _NodeSpec) -> None:
        if spec.id in self._specs:
            raise ConfigurationError(f"workflow {self.id!r} already has a node {spec.id!r}")
        self._specs[spec.id] = spec

    def _resolve(self, refs: Sequence[NodeRef]) -> list[str]:
        if isinstance(refs, str) or callable(refs):
            refs = [refs]
        ids = []
        for ref in refs:
            if isinstance(ref, str):
                ids.append(ref)
            elif _key(ref) in self._ids_by_function:
                ids.append(self._ids_by_function[_key(ref)])
            else:
                raise ConfigurationError(
                    f"after= names {getattr(ref, '__name__', ref)!r}, which is not a node of "
                    f"workflow {self.id!r} (declare parents before their children)"
                )
        return ids

    def definition(self) -> WorkflowDefinition:
        """The ``WorkflowDefinition`` this workflow compiles to."""
        entry = None
        if self._entry is not None:
            entry = self._resolve([self._entry])[0]
        nodes = [
            NodeDefinition(
                id=s.id,
                type=s.type,
                name=s.name,
                description=s.description,
                config=s.config,
                inputs=s.after,
                retry_policy=s.retry,
                timeout_ms=s.timeout_ms,
            )
            for s in self._specs.values()
        ]
        return WorkflowDefinition(
            id=self.id,
            name=self.name or self.id,
            description=self.description,
            entry_node_id=entry,
            nodes=nodes,
            triggers=self.triggers,
            max_concurrency=self.max_concurrency,
            metadata=self.metadata,
        )

    def register_nodes(self, registry: NodeRegistry) -> None:
        """Register this workflow's node functions (what a worker process needs)."""
        for spec in self._specs.values():
            if spec.function is not None:
                registry.register(spec.type, _adapt(spec.id, spec.function), replace=True)


def _key(function: object) -> int:
    return id(inspect.unwrap(function))  # type: ignore[arg-type]


def _adapt(node_id: str, function: NodeFunction) -> Callable[[ExecutionContext], Awaitable[Any]]:
    """Wrap a DSL function as an executor of ``ctx``."""
    signature = inspect.signature(function)
    try:
        hints = typing.get_type_hints(function)
    except Exception:  # unresolvable forward references: go without annotations
        hints = {}
    ctx_param: str | None = None
    data_param: str | None = None
    adapter: TypeAdapter[Any] | None = None
    for param in signature.parameters.values():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        hint = hints.get(param.name, param.annotation)
        is_ctx = hint is ExecutionContext or (
            param.name == "ctx" and hint in (inspect.Parameter.empty, Any)
        )
        if is_ctx and ctx_param is None:
            ctx_param = param.name
        elif data_param is None:
            data_param = param.name
            if param.name in hints and hints[param.name] is not Any:
                adapter = TypeAdapter(hints[param.name])
        elif param.default is inspect.Parameter.empty:
            raise ConfigurationError(
                f"node function {function.__name__!r} takes more than an input and a context"
            )

    async def execute(ctx: ExecutionContext) -> Any:
        kwargs: dict[str, Any] = {}
        if ctx_param is not None:
            kwargs[ctx_param] = ctx
        if data_param is not None:
            data = ctx.input_data
            if adapter is not None:
                try:
                    data = adapter.validate_python(data)
                except ValidationError as exc:
                    raise NonRetryableError(
                        f"the input of node {node_id!r} does not match its type: "
                        + "; ".join(
                            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                            for e in exc.errors()
                        ),
                        node_id=node_id,
                    ) from None
            kwargs[data_param] = data
        value = await function(**kwargs)
        if isinstance(value, ExecutionResult):
            if isinstance(value.data, BaseModel):
                return ExecutionResult(
                    value.success,
                    value.data.model_dump(mode="json"),
                    value.error,
                    value.next_nodes,
                    value.skipped,
                )
            return value
        if isinstance(value, BaseModel):
            return value.model_dump(mode="json")
        return value

    execute.__name__ = f"dsl_{node_id}"
    return execute
