"""Shared setup for the benchmark scripts: one process, in-memory store, one worker."""

from __future__ import annotations

import argparse
import os
import platform
import uuid
from typing import Any

from spane_py import ExecutionStore, InMemoryExecutionStore, NodeRegistry, WorkflowEngine

BENCH_SCHEMA = "spane_bench"


async def fresh_bench_schema() -> None:
    """Drop the benchmark's schema (the store migrates a new one when it starts)."""
    url = os.environ.get("DATABASE_URL")
    if not url:
        return  # the embedded server: a fresh .spane/pg each time is the caller's choice
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f"DROP SCHEMA IF EXISTS {BENCH_SCHEMA} CASCADE")
    finally:
        await conn.close()


def add_store_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--store", choices=["memory", "postgres"], default="memory")


def store_kind_text(kind: str) -> str:
    if kind == "memory":
        return "in-memory store"
    url = os.environ.get("DATABASE_URL")
    return "PostgreSQL store (" + ("$DATABASE_URL" if url else "embedded .spane/pg") + ")"


def make_engine(
    registry: NodeRegistry,
    *,
    max_executions: int = 100_000,
    store_kind: str = "memory",
    **options: Any,
) -> WorkflowEngine:
    """An engine on the benchmark's store; ``options`` go to ``WorkflowEngine``."""
    store: ExecutionStore
    if store_kind == "postgres":
        from spane_py.stores.postgres.store import PostgresExecutionStore

        # $DATABASE_URL, or the embedded server under .spane/pg; a schema of its own,
        # emptied first (see fresh_bench_schema) so that runs compare.
        store = PostgresExecutionStore(schema=BENCH_SCHEMA, apply_migrations=True)
    else:
        store = InMemoryExecutionStore(max_executions=max_executions)
    return WorkflowEngine(
        registry,
        store,
        redis_url=os.environ.get("REDIS_URL"),  # None: embedded Redis
        key_prefix=f"bench{uuid.uuid4().hex[:8]}",
        **options,
    )


async def noop(ctx: Any) -> Any:
    return ctx.input_data


def machine() -> str:
    return f"{platform.python_implementation()} {platform.python_version()}, {os.cpu_count()} cores"


def redis_kind() -> str:
    return "local Redis ($REDIS_URL)" if os.environ.get("REDIS_URL") else "embedded Redis"
