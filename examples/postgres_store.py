"""The PostgreSQL store from code: explicit arguments, no environment but the URL.

    python examples/postgres_store.py

With DATABASE_URL unset the store starts an embedded PostgreSQL in ./.spane/pg (the
``embedded`` extra) and migrates it; against your own database, ``apply_migrations=True``
migrates the schema here too (otherwise run ``spane db upgrade`` first).
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from spane_py import NodeRegistry, PostgresExecutionStore, Workflow, WorkflowEngine

wf = Workflow("profile")


@wf.node()
async def build(user: dict[str, Any]) -> dict[str, Any]:
    return {"name": user["name"], "age": 0, "admin": False, "note": "", "tags": []}


def store() -> PostgresExecutionStore:
    return PostgresExecutionStore(
        os.environ.get("DATABASE_URL"),  # None: the embedded server
        schema=os.environ.get("SPANE_DB_SCHEMA", "spane"),
        max_pool_size=5,
        apply_migrations=True,
    )


async def main() -> None:
    async with WorkflowEngine(NodeRegistry(), store()) as engine:
        await engine.register_workflow(wf)
        await engine.start_workers()
        state = await engine.run_workflow("profile", {"name": "Ada"})
        print(f"ran {state.execution_id[:8]}...: {state.status}")

    # Another engine — another process, another day — reads the same execution back.
    async with WorkflowEngine(NodeRegistry(), store()) as engine:
        again = await engine.get_execution(state.execution_id)
        print(f"read back: {again.status}, v{again.workflow_version}")
        print(f"build returned {again.node_results['build'].data}")


if __name__ == "__main__":
    asyncio.run(main())
