"""The ``map`` node: runs one node type's executor on every item of a list, in its own
worker slot, each item under that type's rate limit and circuit breaker."""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

from spane_py.context import ExecutionContext
from spane_py.definitions.builtin_configs import MAP, MapConfig, pick
from spane_py.definitions.models import NodeDefinition
from spane_py.engine.builtin_base import Services
from spane_py.errors import NodeExecutionError, NonRetryableError
from spane_py.results import ExecutionResult


class MapNode:
    name: ClassVar[str] = MAP

    def __init__(self, services: Services) -> None:
        self.services = services

    async def run(self, ctx: ExecutionContext) -> list[Any]:
        """Run the item type's executor on every item. A map node itself is never rate
        limited, but each item obeys its type's rate limit and circuit breaker (not the
        global limit, which counts node starts): an item that must wait waits here, in
        the map node's worker slot, since it cannot be deferred without its siblings."""
        config = MapConfig.model_validate(ctx.node.config)
        items = pick(ctx.input_data, config.items)
        if not isinstance(items, list):
            where = f"the value at {config.items!r} in its input" if config.items else "its input"
            raise NonRetryableError(
                f"map node {ctx.node_id!r} needs a list as {where}, got {type(items).__name__}",
                node_id=ctx.node_id,
                execution_id=ctx.execution_id,
            )
        registered = self.services.registry.get(config.node_type)
        item_node = NodeDefinition(id=ctx.node_id, type=config.node_type, config=config.config)
        parsed = registered.parse_config(config.config)
        limit = asyncio.Semaphore(config.concurrency or max(len(items), 1))

        async def one(index: int, item: Any) -> Any:
            item_ctx = ExecutionContext(
                workflow_id=ctx.workflow_id,
                execution_id=ctx.execution_id,
                node=item_node,
                input_data=item,
                records=ctx.records,
                parent_ids=ctx.parent_ids,
                workflow_version=ctx.workflow_version,
                parent_execution_id=ctx.parent_execution_id,
                depth=ctx.depth,
                attempt=ctx.attempt,
                metadata=ctx.metadata,
                config=parsed,
                initial_data=ctx.initial_data_json,
                artifacts=ctx.artifacts,
            )
            async with limit:
                try:
                    value = await self.services.traffic.run_item(
                        config.node_type,
                        f"{ctx.execution_id}:{ctx.node_id}:{ctx.attempt}:{index}",
                        lambda: registered.run(item_ctx),
                        rate_limit=registered.rate_limit,
                        breaker=registered.circuit_breaker,
                        lease_ms=ctx.node.timeout_ms,
                        execution_id=ctx.execution_id,
                        node_id=ctx.node_id,
                    )
                    result = (
                        value
                        if isinstance(value, ExecutionResult)
                        else ExecutionResult(True, value)
                    )
                    if not result.success:
                        raise NodeExecutionError(result.error or "unsuccessful result")
                    return result.data
                except Exception as exc:
                    message = exc.message if isinstance(exc, NodeExecutionError) else repr(exc)
                    if config.on_item_error == "collect":
                        return {"error": message, "index": index}
                    raise NodeExecutionError(
                        f"map node {ctx.node_id!r}: item {index} failed: {message}",
                        node_id=ctx.node_id,
                        execution_id=ctx.execution_id,
                    ) from exc
                finally:
                    for line in item_ctx.drain_logs():
                        ctx.keep_log(line)

        try:
            async with asyncio.TaskGroup() as group:
                tasks = [group.create_task(one(i, item)) for i, item in enumerate(items)]
        except BaseExceptionGroup as group_error:  # the first failed item fails the node
            first = group_error.exceptions[0]
            # Its cause is the item's own error: the traceback keeps the user's frames.
            raise first from first.__cause__
        return [t.result() for t in tasks]
