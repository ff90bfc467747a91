"""Calling an executor and reading what it returned: the node's timeout, the value turned
into a ``NodeOutcome`` (checked: next_nodes, output size), errors as text. No I/O beyond
the executor itself, so the runner keeps only the orchestration."""

from __future__ import annotations

import asyncio
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from spane_py import _json
from spane_py._text import storable
from spane_py.context import ExecutionContext
from spane_py.definitions.graph import WorkflowGraph
from spane_py.definitions.models import NodeDefinition
from spane_py.engine import planner
from spane_py.errors import NodeTimeoutError, NonRetryableError, SpaneError
from spane_py.results import ExecutionResult
from spane_py.state import NodeStatus

MAX_TRACEBACK_CHARS = 20_000

Executor = Callable[[ExecutionContext], Awaitable[Any]]


async def call_executor(run: Executor, node: NodeDefinition, ctx: ExecutionContext) -> Any:
    """The executor, within the node's timeout."""
    if node.timeout_ms is None:
        return await run(ctx)
    deadline = asyncio.timeout(node.timeout_ms / 1000)
    try:
        async with deadline:
            return await run(ctx)
    except TimeoutError:
        if not deadline.expired():  # the executor's own TimeoutError: an error
            raise
        raise NodeTimeoutError(
            f"node {node.id!r} timed out after {node.timeout_ms} ms",
            node_id=node.id,
            execution_id=ctx.execution_id,
            workflow_id=ctx.workflow_id,
        ) from None


def to_outcome(
    graph: WorkflowGraph, node: NodeDefinition, value: Any, *, max_output_bytes: int
) -> planner.NodeOutcome:
    """What the executor returned, as the node's outcome."""
    result = value if isinstance(value, ExecutionResult) else ExecutionResult(True, value)
    if not result.success:
        return planner.NodeOutcome(
            NodeStatus.FAILED, error=result.error or "the node returned an unsuccessful result"
        )
    next_nodes: tuple[str, ...] | None = None
    if result.next_nodes is not None:
        if isinstance(result.next_nodes, str):
            raise NonRetryableError(
                f"node {node.id!r} returned next_nodes as a string; give a list of node ids",
                node_id=node.id,
            )
        next_nodes = tuple(result.next_nodes)
        unknown = [n for n in next_nodes if n not in graph.children[node.id]]
        if unknown:
            raise NonRetryableError(
                f"node {node.id!r} chose next_nodes {unknown}, which are not among its "
                f"outputs {list(graph.children[node.id])}",
                node_id=node.id,
            )
    output = None
    if result.data is not None or not result.skipped:
        output = _json.dumps(result.data, what=f"the output of node {node.id!r}")
        if len(output) * 4 > max_output_bytes and len(output.encode()) > max_output_bytes:
            raise NonRetryableError(
                f"the output of node {node.id!r} is {len(output.encode())} bytes, over the "
                f"limit of {max_output_bytes} bytes",
                node_id=node.id,
            )
    status = NodeStatus.SKIPPED if result.skipped else NodeStatus.SUCCEEDED
    return planner.NodeOutcome(status, output=output, next_nodes=next_nodes)


def format_traceback(exc: BaseException) -> str:
    # storable(): a message with a NUL or a lone surrogate must not keep the failure from
    # being recorded (PostgreSQL refuses such text).
    text = storable("".join(traceback.format_exception(exc)))
    return text if len(text) <= MAX_TRACEBACK_CHARS else "..." + text[-MAX_TRACEBACK_CHARS:]


def describe(exc: BaseException) -> str:
    if isinstance(exc, SpaneError):
        return storable(exc.message)
    text = str(exc)
    return storable(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)
