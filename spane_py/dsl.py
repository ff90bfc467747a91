"""The Python DSL: workflows in code that compile to the same ``WorkflowDefinition``.

    wf = Workflow("etl")

    @wf.node()
    async def extract(data: dict) -> list[int]:
        return data["rows"]

    @wf.node(after=[extract], retry=RetryPolicy(max_attempts=3))
    async def load(rows: list[int], ctx: ExecutionContext) -> int:
        ctx.log("info", "loading", rows=len(rows))
        return len(rows)

A node function may take the node's input (validated against its type annotation when it
has one), the ``ExecutionContext`` (a parameter named ``ctx`` or annotated with the type),
both, or neither. It returns an ``ExecutionResult`` or any JSON value; a pydantic model is
dumped to JSON. Each function becomes a node type named ``"<workflow id>.<node id>"``,
registered when the workflow is.

An ``async def`` runs on the worker's event loop; a plain ``def`` (blocking code: requests,
an SDK, pandas) runs on a thread of the node thread pool, as a ``def`` executor does (see
``NodeRegistry.register``): its input is checked and its output dumped in the thread too,
and a timeout ends its attempt but not its thread, whose late result is dropped.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import re
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar, overload

from pydantic import BaseModel, TypeAdapter, ValidationError

from spane_py.context import ExecutionContext
from spane_py.definitions.loading import parse_definition
from spane_py.definitions.models import (
    NODE_ID_PATTERN,
    ConcurrencyLimit,
    RetryPolicy,
    ScheduleTrigger,
    WebhookTrigger,
    WorkflowDefinition,
    is_valid_workflow_id,
)
from spane_py.errors import (
    ConfigurationError,
    NonRetryableError,
    ValidationIssue,
    WorkflowValidationError,
)
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult

NodeFunction = Callable[..., Any]  # def or async def
NodeRef = NodeFunction | str
F = TypeVar("F", bound=NodeFunction)

_node_id_re = re.compile(NODE_ID_PATTERN)


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
    queue: str | None = None


class Workflow:
    def __init__(
        self,
        id: str,
        *,
        name: str | None = None,
        description: str | None = None,
        entry: NodeRef | None = None,
        max_concurrency: int | None = None,
        concurrency: ConcurrencyLimit | Mapping[str, Any] | None = None,
        triggers: Sequence[ScheduleTrigger | WebhookTrigger] = (),
        metadata: dict[str, Any] | None = None,
        queue: str | None = None,
        retention: Mapping[str, Any] | None = None,
    ) -> None:
        if not isinstance(id, str) or not is_valid_workflow_id(id):
            raise WorkflowValidationError(
                issues=[
                    ValidationIssue(
                        f"id: {id!r} is not a valid workflow id (lowercase letters, digits, "
                        "'-' and '_', starting with a letter or digit)",
                        path=("id",),
                    )
                ],
                workflow_id=id if isinstance(id, str) else None,
            )
        self.id = id
        self.name = name
        self.description = description
        self._entry = entry
        self.max_concurrency = max_concurrency
        # A limit per key value: ConcurrencyLimit(key="input.customer_id", max=1), or the
        # same as a dict (checked with the rest of the definition).
        self.concurrency = concurrency
        self.triggers = list(triggers)
        self.metadata = dict(metadata or {})
        self.queue = queue  # of its nodes that name none (spane_py/engine/routing.py)
        # How long its finished executions are kept: {"completed": "7d", ...} (retention.py).
        self.retention = None if retention is None else dict(retention)
        self._specs: dict[str, _NodeSpec] = {}
        self._ids_by_function: dict[int, list[str]] = {}

    @overload
    def node(
        self,
        fn: F,
        *,
        id: str | None = None,
        after: NodeRef | Sequence[NodeRef] = (),
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> F: ...

    @overload
    def node(
        self,
        fn: None = None,
        *,
        id: str | None = None,
        after: NodeRef | Sequence[NodeRef] = (),
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> Callable[[F], F]: ...

    def node(
        self,
        fn: F | None = None,
        *,
        id: str | None = None,
        after: NodeRef | Sequence[NodeRef] = (),
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        config: dict[str, Any] | None = None,
        name: str | None = None,
        queue: str | None = None,
    ) -> F | Callable[[F], F]:
        """Decorator: make a function (``async def``, or ``def`` to run on a thread) a node.
        ``after`` lists its parents; ``queue`` the queue it runs on (only workers consuming
        it run it; default: the workflow's, else ``default``)."""

        def decorate(function: F) -> F:
            if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
                raise ConfigurationError(
                    f"node function {getattr(function, '__name__', function)!r} is a "
                    "generator function; a node function returns its result"
                )
            node_id = id or function.__name__
            _check_signature(node_id, function)
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
                    queue=queue,
                )
            )
            self._ids_by_function.setdefault(_key(function), []).append(node_id)
            return function

        return decorate(fn) if fn is not None else decorate

    def add(
        self,
        id: str,
        type: str,
        *,
        after: NodeRef | Sequence[NodeRef] = (),
        config: dict[str, Any] | None = None,
        retry: RetryPolicy | None = None,
        timeout_ms: int | None = None,
        name: str | None = None,
        queue: str | None = None,
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
                queue=queue,
            )
        )
        return id

    def _add(self, spec: _NodeSpec) -> None:
        if not isinstance(spec.id, str) or not _node_id_re.match(spec.id):
            raise ConfigurationError(
                f"{spec.id!r} is not a valid node id for workflow {self.id!r} (letters, "
                "digits, '_', '-' and '.', starting with a letter or digit)"
            )
        if spec.id in self._specs:
            raise ConfigurationError(f"workflow {self.id!r} already has a node {spec.id!r}")
        self._specs[spec.id] = spec

    def _resolve(self, refs: NodeRef | Sequence[NodeRef]) -> list[str]:
        if isinstance(refs, str) or callable(refs):
            refs = [refs]
        ids = []
        for ref in refs:
            if isinstance(ref, str):
                ids.append(ref)
            elif _key(ref) in self._ids_by_function:
                named = self._ids_by_function[_key(ref)]
                if len(named) > 1:
                    raise ConfigurationError(
                        f"after= names {getattr(ref, '__name__', ref)!r}, which is used by "
                        f"several nodes of workflow {self.id!r} ({', '.join(named)}); "
                        "name the node by its id instead"
                    )
                ids.append(named[0])
            else:
                raise ConfigurationError(
                    f"after= names {getattr(ref, '__name__', ref)!r}, which is not a node of "
                    f"workflow {self.id!r} (declare parents before their children)"
                )
        return ids

    def definition(self) -> WorkflowDefinition:
        """The ``WorkflowDefinition`` this workflow compiles to (its fields checked; the
        graph is checked by ``compile_workflow`` and ``register_workflow``)."""
        # Through parse_definition, so a bad value is a WorkflowValidationError naming the
        # node, as for a definition loaded from JSON.
        return parse_definition(self.raw_definition())

    def raw_definition(self) -> dict[str, Any]:
        """The definition as a plain dict, nothing checked yet: what ``register_workflow``
        validates, reporting the problems of its fields, graph and nodes together."""
        entry = None
        if self._entry is not None:
            entry = self._resolve([self._entry])[0]
        nodes = [
            {
                "id": s.id,
                "type": s.type,
                "name": s.name,
                "description": s.description,
                "config": s.config,
                "inputs": s.after,
                "retry_policy": s.retry,
                "timeout_ms": s.timeout_ms,
                "queue": s.queue,
            }
            for s in self._specs.values()
        ]
        return {
            "id": self.id,
            "name": self.name or self.id,
            "description": self.description,
            "entry_node_id": entry,
            "nodes": nodes,
            "triggers": self.triggers,
            "max_concurrency": self.max_concurrency,
            "concurrency": self.concurrency,
            "metadata": self.metadata,
            "queue": self.queue,
            "retention": self.retention,
        }

    def register_nodes(self, registry: NodeRegistry) -> None:
        """Register this workflow's node functions (what a worker process needs)."""
        for spec in self._specs.values():
            if spec.function is not None:
                registry.register(spec.type, _adapt(spec.id, spec.function), replace=True)


def _key(function: object) -> int:
    return id(inspect.unwrap(function))  # type: ignore[arg-type]


def _type_hints(function: Callable[..., Any]) -> dict[str, Any]:
    """The function's resolved annotations; those that cannot be resolved stay strings."""
    try:
        return typing.get_type_hints(function)
    except Exception:  # one unresolvable forward reference: resolve the others one by one
        pass
    target = inspect.unwrap(function)
    globalns = getattr(target, "__globals__", {})
    hints: dict[str, Any] = {}
    for name, annotation in getattr(target, "__annotations__", {}).items():
        if isinstance(annotation, str):
            with contextlib.suppress(Exception):
                annotation = eval(annotation, globalns)
        hints[name] = annotation
    return hints


def _is_context_type(annotation: Any) -> bool:
    if isinstance(annotation, type):
        return issubclass(annotation, ExecutionContext)
    # An annotation left unresolved (a string): go by its name.
    return isinstance(annotation, str) and annotation.rsplit(".", 1)[-1] == "ExecutionContext"


@dataclass(frozen=True, slots=True)
class _Parameters:
    ctx: str | None
    data: str | None
    adapter: TypeAdapter[Any] | None
    positional: tuple[inspect.Parameter, ...]  # positional-only parameters to pass in order


def _parameters(node_id: str, function: NodeFunction) -> _Parameters:
    signature = inspect.signature(function)
    hints = _type_hints(function)
    ctx_param: str | None = None
    data_param: str | None = None
    adapter: TypeAdapter[Any] | None = None
    params = [
        p for p in signature.parameters.values() if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    for param in params:
        hint = hints.get(param.name, param.annotation)
        is_ctx = _is_context_type(hint) or (
            param.name == "ctx" and hint in (inspect.Parameter.empty, Any)
        )
        if is_ctx and ctx_param is None:
            ctx_param = param.name
        elif data_param is None:
            data_param = param.name
            hint = hints.get(param.name, Any)
            if hint is not Any and not isinstance(hint, str):  # unresolved: not validated
                adapter = TypeAdapter(hint)
        elif param.default is inspect.Parameter.empty:
            raise ConfigurationError(
                f"node function {function.__name__!r} (node {node_id!r}) takes more than an "
                "input and a context; give the other parameters defaults"
            )
    used = {ctx_param, data_param}
    positional: list[inspect.Parameter] = []
    last_used = -1
    for i, param in enumerate(p for p in params if p.kind is p.POSITIONAL_ONLY):
        positional.append(param)
        if param.name in used:
            last_used = i
    return _Parameters(ctx_param, data_param, adapter, tuple(positional[: last_used + 1]))


def _check_signature(node_id: str, function: NodeFunction) -> None:
    """Refuse a node function whose parameters cannot be filled, at decoration time."""
    _parameters(node_id, function)


def _jsonable(value: Any) -> Any:
    """Pydantic models (also inside lists and dicts) dumped to JSON-ready values."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value


def _adapt(node_id: str, function: NodeFunction) -> Callable[[ExecutionContext], Any]:
    """Wrap a DSL function as an executor of ``ctx``: async for an ``async def``, a plain
    function (which the registry runs on a thread) for a ``def``."""
    spec = _parameters(node_id, function)
    positional_names = {p.name for p in spec.positional}

    def arguments(ctx: ExecutionContext) -> tuple[list[Any], dict[str, Any]]:
        values: dict[str, Any] = {}
        if spec.ctx is not None:
            values[spec.ctx] = ctx
        if spec.data is not None:
            data = ctx.input_data
            if spec.adapter is not None:
                try:
                    data = spec.adapter.validate_python(data)
                except ValidationError as exc:
                    raise NonRetryableError(
                        f"the input of node {node_id!r} does not match its type: "
                        + "; ".join(
                            f"{'.'.join(str(p) for p in e['loc']) or 'input'}: {e['msg']}"
                            for e in exc.errors()
                        ),
                        node_id=node_id,
                        workflow_id=ctx.workflow_id,
                        execution_id=ctx.execution_id,
                    ) from None
            values[spec.data] = data
        args = [values.get(p.name, p.default) for p in spec.positional]
        kwargs = {k: v for k, v in values.items() if k not in positional_names}
        return args, kwargs

    def output(value: Any) -> Any:
        if isinstance(value, ExecutionResult):
            return dataclasses.replace(value, data=_jsonable(value.data))
        return _jsonable(value)

    execute: Callable[[ExecutionContext], Any]
    if inspect.iscoroutinefunction(function):

        async def execute_async(ctx: ExecutionContext) -> Any:
            args, kwargs = arguments(ctx)
            return output(await function(*args, **kwargs))

        execute = execute_async
    else:

        def execute_sync(ctx: ExecutionContext) -> Any:
            args, kwargs = arguments(ctx)
            return output(function(*args, **kwargs))

        execute = execute_sync
    execute.__name__ = f"dsl_{node_id}"
    return execute
