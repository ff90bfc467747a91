"""``NodeRegistry``: node type -> executor, with per-type options."""

from __future__ import annotations

import builtins
import inspect
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ValidationError

from spane_py._queue_names import DEFAULT_QUEUE, check_queue_name
from spane_py.context import ExecutionContext
from spane_py.definitions.builtin_configs import BUILTIN_TYPES, CONFIG_MODELS, MAP, MapConfig
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import threads
from spane_py.errors import (
    ConfigurationError,
    IssueKind,
    NodeNotRegisteredError,
    NonRetryableError,
    ValidationIssue,
    invalid_workflow,
)
from spane_py.traffic.policies import CircuitBreakerPolicy, RateLimit


@runtime_checkable
class NodeExecutor(Protocol):
    """An object whose ``execute`` coroutine runs a node (SPANE's ``INodeExecutor``)."""

    async def execute(self, ctx: ExecutionContext) -> Any: ...


class SyncNodeExecutor(Protocol):
    """An object whose plain ``execute`` method runs a node, on a thread of the pool."""

    def execute(self, ctx: ExecutionContext) -> Any: ...


ExecutorFunction = Callable[[ExecutionContext], Awaitable[Any]]
# A plain ``def`` of ``ctx``: it runs on a thread of ``spane_py.engine.threads``.
SyncExecutorFunction = Callable[[ExecutionContext], Any]


@dataclass(frozen=True, slots=True)
class RegisteredNode:
    type: str
    run: ExecutorFunction
    executor: object
    config_model: builtins.type[BaseModel] | None = None
    rate_limit: RateLimit | None = None
    circuit_breaker: CircuitBreakerPolicy | None = None
    queue: str | None = None  # where its nodes run unless their definition says

    def parse_config(self, config: dict[str, Any]) -> BaseModel | None:
        if self.config_model is None:
            return None
        return self.config_model.model_validate(config)


class NodeRegistry:
    def __init__(self) -> None:
        self._nodes: dict[str, RegisteredNode] = {}
        # Queues of types this process routes but does not run (``route``).
        self._routes: dict[str, str] = {}

    def register(
        self,
        node_type: str,
        executor: NodeExecutor | SyncNodeExecutor | ExecutorFunction | SyncExecutorFunction,
        *,
        config_model: type[BaseModel] | None = None,
        rate_limit: RateLimit | tuple[int, float] | None = None,
        circuit_breaker: CircuitBreakerPolicy | None = None,
        queue: str | None = None,
        replace: bool = False,
    ) -> None:
        """Register ``executor`` for ``node_type``.

        ``executor`` is a function of ``ctx`` or an object with an ``execute(ctx)``
        method; it returns an ``ExecutionResult``, or any JSON value, which counts as a
        successful result with that data. ``config_model`` (a pydantic model) validates the
        ``config`` of every node of this type when a workflow using it is registered.

        An ``async def`` executor runs on the worker's event loop. A plain ``def`` one (a
        function, a callable object, an ``execute`` method) is for blocking code (requests,
        SDKs, pandas): it runs on a thread of the node thread pool
        (``spane_py.engine.threads``, ``spane worker --threads N``), never on the loop, in a
        copy of the caller's ``contextvars``. It gets the same ``ctx`` and may read its
        fields and call ``ctx.log``, ``ctx.rate_limit`` and ``ctx.is_cancelled``;
        ``ctx.cancelled()`` is a coroutine, which a thread cannot await. A timeout or a
        cancel ends the attempt at once, but not the thread: the function runs on, and what
        it returns or raises then (and what it logs) is dropped. A ``def`` that returns a
        coroutine fails its node: declare it ``async def``.

        ``rate_limit`` ``(max_calls, per_seconds)`` (or a ``RateLimit``) lets at most that
        many nodes of the type start in any window of ``per_seconds``, counted across every
        worker process of the engine's key prefix; a node over the limit is deferred, not
        failed, and gives its worker slot up while it waits. ``circuit_breaker`` (a
        ``CircuitBreakerPolicy``) stops calling the type's executor after repeated failures
        (see ``spane_py.traffic``). ``queue`` names the queue the type's nodes run on
        (default: the workflow's, else ``default``; a node's own ``queue`` in its
        definition wins): only workers consuming that queue run them (``spane worker
        --queues``). Register the same settings in every process.
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
        if queue is not None:
            queue = _queue(queue, node_type)
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
            node_type, run, executor, config_model, limit, circuit_breaker, queue
        )

    def route(self, node_type: str, queue: str) -> None:
        """Send the nodes of ``node_type`` to ``queue`` without an executor here: for an
        engine that only enqueues (``producer_only``), whose registry does not hold the
        workers' executors but must send the entry nodes where those run. A registered
        type's own ``queue`` wins."""
        if not isinstance(node_type, str) or not node_type.strip():
            raise ConfigurationError(f"node type must be a non-empty string, got {node_type!r}")
        self._routes[node_type] = _queue(queue, node_type)

    def queue_of(self, node_type: str) -> str | None:
        """The queue ``node_type`` was registered (or routed) to; None when it names none."""
        found = self._nodes.get(node_type)
        if found is not None and found.queue is not None:
            return found.queue
        return self._routes.get(node_type)

    def queues(self) -> list[str]:
        """The queues this registry's executors run on (what a worker consumes unless told
        otherwise): each registered type's queue, ``default`` for a type without one."""
        return sorted({n.queue or DEFAULT_QUEUE for n in self._nodes.values()})

    def get(self, node_type: str) -> RegisteredNode:
        try:
            return self._nodes[node_type]
        except KeyError:
            raise NodeNotRegisteredError(
                f"no executor is registered for node type {node_type!r} in this process "
                f"(registered: {', '.join(self.types()) or 'none'})"
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

    def check_workflow(self, graph: WorkflowGraph, *, check_executors: bool = True) -> None:
        """Every node's type is registered and its config matches the type's model; one
        error lists every problem (see ``workflow_issues``)."""
        issues = self.workflow_issues(graph.definition.nodes, check_executors=check_executors)
        if issues:
            raise invalid_workflow(issues, graph.workflow_id)

    def workflow_issues(
        self, nodes: Sequence[NodeDefinition], *, check_executors: bool = True
    ) -> list[ValidationIssue]:
        """The problems of ``nodes`` against this registry, node by node: a type with no
        executor here, a config that does not match its type's model (built-in types and
        registered ones). ``check_executors=False`` (a producer, whose workers hold the
        executors) skips the first: a type unknown here is taken as it is, its config
        unchecked."""
        issues: list[ValidationIssue] = []
        for node in nodes:
            builtin = CONFIG_MODELS.get(node.type)
            registered = self._nodes.get(node.type)
            if builtin is None and registered is None:
                if check_executors:
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} has type {node.type!r}, which has no registered "
                            f"executor (registered: {', '.join(self.types()) or 'none'})",
                            node.id,
                            ("type",),
                            IssueKind.NODE_NOT_REGISTERED,
                        )
                    )
                continue
            try:
                if registered is not None:
                    registered.parse_config(node.config)
                    continue
                assert builtin is not None
                parsed = builtin.model_validate(node.config)
                if node.type == MAP:
                    assert isinstance(parsed, MapConfig)
                    issue = self._map_issue(node.id, parsed, check_executors)
                    if issue is not None:
                        issues.append(issue)
            except ValidationError as exc:
                for err in exc.errors():
                    loc = tuple(str(p) for p in err["loc"])
                    where = ".".join(("config", *loc))
                    issues.append(
                        ValidationIssue(
                            f"node {node.id!r} ({node.type}): {where}: {err['msg']}",
                            node.id,
                            ("config", *loc),
                            IssueKind.INVALID_CONFIG,
                        )
                    )
        return issues

    def _map_issue(
        self, node_id: str, config: MapConfig, check_executors: bool
    ) -> ValidationIssue | None:
        if config.node_type in BUILTIN_TYPES:
            return ValidationIssue(
                f"node {node_id!r} (map): config.nodeType {config.node_type!r} is a built-in "
                "type; a map runs a registered executor",
                node_id,
                ("config", "nodeType"),
                IssueKind.INVALID_CONFIG,
            )
        registered = self._nodes.get(config.node_type)
        if registered is None:
            if not check_executors:
                return None
            return ValidationIssue(
                f"node {node_id!r} (map): config.nodeType {config.node_type!r} has no "
                "registered executor",
                node_id,
                ("config", "nodeType"),
                IssueKind.NODE_NOT_REGISTERED,
            )
        try:
            registered.parse_config(config.config)
        except ValidationError as exc:
            return ValidationIssue(
                f"node {node_id!r} (map): config.config for {config.node_type!r}: "
                f"{exc.errors()[0]['msg']}",
                node_id,
                ("config", "config"),
                IssueKind.INVALID_CONFIG,
            )
        return None


def _queue(queue: object, node_type: str) -> str:
    try:
        return check_queue_name(queue, what=f"the queue of node type {node_type!r}")
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None


def _as_callable(node_type: str, executor: object) -> ExecutorFunction:
    if isinstance(executor, type):
        # The class itself would "work" with execute(ctx) binding ctx to self.
        raise ConfigurationError(
            f"executor for node type {node_type!r} is the class {executor.__name__}; "
            f"register an instance ({executor.__name__}())"
        )
    execute = getattr(executor, "execute", None)
    if execute is not None and not inspect.isfunction(executor):
        if not callable(execute):
            raise ConfigurationError(
                f"executor for node type {node_type!r}: its execute attribute is not a "
                f"method (got {type(execute).__name__})"
            )
        return _coroutine_function(node_type, execute, "execute()")
    if not callable(executor):
        raise ConfigurationError(
            f"executor for node type {node_type!r} must be a function of ctx (def or async "
            f"def) or an object with an execute(ctx) method, got {type(executor).__name__}"
        )
    return _coroutine_function(node_type, executor, "the executor")


def _coroutine_function(
    node_type: str, function: Callable[[ExecutionContext], Any], what: str
) -> ExecutorFunction:
    """``function`` if it is a coroutine function, else a coroutine function that runs it on
    a thread of the node pool."""
    if inspect.iscoroutinefunction(function) or inspect.iscoroutinefunction(
        getattr(function, "__call__", None)  # noqa: B004 (an object with async __call__)
    ):
        return function
    if inspect.isgeneratorfunction(function) or inspect.isasyncgenfunction(function):
        raise ConfigurationError(
            f"executor for node type {node_type!r}: {what} is a generator function; an "
            "executor returns its result"
        )

    def call(ctx: ExecutionContext) -> Any:
        value = function(ctx)
        if inspect.isawaitable(value):
            if inspect.iscoroutine(value):
                value.close()  # never awaited: no "was never awaited" warning either
            raise NonRetryableError(
                f"executor for node type {node_type!r}: {what} is a plain function (def) "
                f"and returned {type(value).__name__}, which a thread cannot await; "
                "declare it async def",
                node_id=ctx.node_id,
                execution_id=ctx.execution_id,
                workflow_id=ctx.workflow_id,
            )
        return value

    async def run(ctx: ExecutionContext) -> Any:
        return await threads.run_sync(call, ctx)

    run.__name__ = run.__qualname__ = f"in_thread_{getattr(function, '__name__', 'executor')}"
    return run
