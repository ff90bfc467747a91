"""A process on the PostgreSQL store imports what it runs: starting the store (its schema
check included) and running nodes loads none of SQLAlchemy, Alembic or Mako, which only
migrations need (issue 13: they were ~28 MiB of a worker's 82)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import asyncio, json, sys

    from spane_py import NodeRegistry, WorkflowEngine
    from spane_py.stores.postgres.store import PostgresExecutionStore

    database_url, schema, redis_url, prefix = sys.argv[1:5]


    async def main():
        registry = NodeRegistry()

        async def double(ctx):
            return ctx.input_data * 2

        registry.register("double", double)
        store = PostgresExecutionStore(database_url, schema=schema, apply_migrations=False)
        engine = WorkflowEngine(
            registry, store, redis_url=redis_url, key_prefix=prefix, poll_delay=0.2
        )
        async with engine:
            await engine.register_workflow(
                {"id": "twice", "nodes": [
                    {"id": "a", "type": "double", "outputs": ["b"]}, {"id": "b", "type": "double"}
                ]}
            )
            await engine.start_workers(2)
            state = await engine.run_workflow("twice", 3, timeout=30)
            await engine.purge()
        loaded = sorted(
            m for m in sys.modules if m.split(".")[0] in ("sqlalchemy", "alembic", "mako")
        )
        print(json.dumps({"status": str(state.status), "b": state.node_results["b"].data,
                          "loaded": loaded}))


    asyncio.run(main())
    """
)


def test_a_postgres_worker_imports_no_sqlalchemy_alembic_or_mako(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT, database_url, pg_schema, redis_url, key_prefix],
        cwd=REPO_ROOT,
        env={k: v for k, v in os.environ.items() if k != "DATABASE_URL"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert (report["status"], report["b"]) == ("completed", 12)
    assert report["loaded"] == []
