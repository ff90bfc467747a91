"""The workers of ``examples/restock.json``: the only processes with its executors.

    spane worker examples.restock_worker:create_engine

A worker registers executors only: it reads the definition of each execution it runs from
PostgreSQL, where the producer (``examples/restock_producer.py``) registered it.
"""

from __future__ import annotations

from typing import Any

from spane_py import ExecutionContext, NodeRegistry, SpaneSettings, WorkflowEngine


async def stock_level(ctx: ExecutionContext) -> dict[str, Any]:
    item = ctx.input_data
    return {"sku": item["sku"], "missing": max(ctx.node_config["minimum"] - item["in_stock"], 0)}


async def purchase_order(ctx: ExecutionContext) -> str:
    need = ctx.input_data
    if not need["missing"]:
        return f"{need['sku']}: enough in stock"
    return f"{need['sku']}: ordered {need['missing']} from {ctx.node_config['supplier']}"


def create_engine() -> WorkflowEngine:
    registry = NodeRegistry()
    registry.register("stock-level", stock_level)
    registry.register("purchase-order", purchase_order)
    return WorkflowEngine(registry, **SpaneSettings().engine_kwargs())
