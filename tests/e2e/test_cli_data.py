"""``spane events`` and ``spane artifacts``, as subprocesses, on what an engine in the test
process left in a PostgreSQL schema of the test's own (event history on)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

from spane_py import ExecutionContext, ExecutionStatus, NodeRegistry, WorkflowEngine
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.e2e.conftest import Run, pg_env


async def _run_one(database_url: str, schema: str, redis_url: str, key_prefix: str) -> str:
    registry = NodeRegistry()

    async def report(ctx: ExecutionContext) -> Any:
        await ctx.put_artifact("report.txt", b"two lines\nof text\n", content_type="text/plain")
        await ctx.put_artifact("totals", {"sum": 42})
        return "done"

    registry.register("report", report)
    store = PostgresExecutionStore(database_url, schema=schema, apply_migrations=False)
    engine = WorkflowEngine(
        registry, store, redis_url=redis_url, key_prefix=key_prefix, event_history=True
    )
    async with engine:
        await engine.register_workflow(
            {"id": "reporting", "nodes": [{"id": "r", "type": "report"}]}
        )
        await engine.start_workers(2)
        state = await engine.run_workflow("reporting", None, timeout=20)
        assert state.status is ExecutionStatus.COMPLETED
        await engine.purge()
    return state.execution_id


async def test_events_and_artifacts_commands(
    spane: Run,
    cli_env: dict[str, str],
    database_url: str,
    pg_schema: str,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
) -> None:
    execution_id = await _run_one(database_url, pg_schema, redis_url, key_prefix)
    env = {**pg_env(cli_env, database_url, pg_schema), "COLUMNS": "160"}

    def run(*args: str) -> Any:
        return asyncio.to_thread(spane, *args, env=env)

    listed, got, typed, table, missing, bad = await asyncio.gather(
        run("artifacts", "list", execution_id[:13], "--json"),
        run("artifacts", "get", execution_id, "report.txt", "-o", str(tmp_path / "r.txt")),
        run("events", "--execution", execution_id, "--type", "node.completed", "--json"),
        run("events", "--execution", execution_id),
        run("artifacts", "get", execution_id, "nope"),
        run("events", "--since", "yesterday"),
    )
    assert listed.returncode == 0, listed.stderr
    assert {a["name"]: a["size"] for a in json.loads(listed.stdout)} == {
        "report.txt": 18,
        "totals": len(json.dumps({"sum": 42}, separators=(",", ":"))),
    }
    assert got.returncode == 0, got.stderr
    assert (tmp_path / "r.txt").read_bytes() == b"two lines\nof text\n"
    assert typed.returncode == 0, typed.stderr
    [completed] = json.loads(typed.stdout)
    assert (completed["type"], completed["node_id"]) == ("node.completed", "r")
    assert table.returncode == 0, table.stderr
    for name in ("execution.started", "node.started", "node.completed", "execution.completed"):
        assert name in table.stdout
    assert missing.returncode == 1
    assert "has no artifact 'nope'" in missing.stderr
    assert bad.returncode == 2
    assert "--since 'yesterday' is not a time" in bad.stderr
