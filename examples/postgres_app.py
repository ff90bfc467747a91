"""A worker application on PostgreSQL: the module ``spane worker`` imports.

    export DATABASE_URL=postgresql://postgres@127.0.0.1:5432/postgres
    export REDIS_URL=redis://127.0.0.1:6379/0
    spane db upgrade                                     # once per schema and release
    spane worker examples.postgres_app:create_engine     # as many as you like
    python examples/postgres_enqueue.py                  # start executions, wait for them

A worker registers node executors only. It never registers a workflow: the first time it
runs a node of an execution it loads the definition, at the version the execution is
pinned to, from PostgreSQL (then keeps it in its cache).
"""

from __future__ import annotations

from typing import Any

from spane_py import NodeRegistry, SpaneSettings, Workflow, WorkflowEngine

invoice = Workflow("invoice")


@invoice.node()
async def load(order: dict[str, Any]) -> dict[str, Any]:
    return {"id": order["id"], "net": sum(line["price"] * line["qty"] for line in order["lines"])}


@invoice.node(after=load)
async def tax(order: dict[str, Any]) -> float:
    return round(order["net"] * 0.2, 2)


@invoice.node(after=load)
async def discount(order: dict[str, Any]) -> float:
    return 10.0 if order["net"] >= 100 else 0.0


@invoice.node(after=[load, tax, discount])
async def total(parts: dict[str, Any]) -> dict[str, Any]:
    net = parts["load"]["net"]
    return {"id": parts["load"]["id"], "total": net + parts["tax"] - parts["discount"]}


def create_engine() -> WorkflowEngine:
    """The engine of one worker process, configured from the environment: DATABASE_URL,
    SPANE_DB_SCHEMA, REDIS_URL, SPANE_KEY_PREFIX, SPANE_LEASE_SECONDS, ..."""
    registry = NodeRegistry()
    invoice.register_nodes(registry)  # the executors; the definition comes from the store
    return WorkflowEngine(registry, **SpaneSettings().engine_kwargs())
