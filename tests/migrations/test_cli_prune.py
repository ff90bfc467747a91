"""``spane db prune``, run as a subprocess against a migrated schema with executions."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from spane_py.engine.ids import new_execution_id
from spane_py.records import ExecutionRecord, LogRecord, NodeRecord
from spane_py.state import ExecutionStatus, NodeStatus
from spane_py.stores.postgres.store import PostgresExecutionStore


def _spane(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and "SPANE_" not in k}
    return subprocess.run(
        [sys.executable, "-m", "spane_py.cli", "db", "prune", *args],
        cwd=tmp_path,
        env={**env, "COLUMNS": "200", "PYTHONIOENCODING": "utf-8"},
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=60,
        check=False,
    )


def _record(workflow_id: str, status: ExecutionStatus, days_ago: float) -> ExecutionRecord:
    ended = datetime.now(UTC) - timedelta(days=days_ago)
    return ExecutionRecord(
        execution_id=new_execution_id(),
        workflow_id=workflow_id,
        workflow_version=1,
        status=status,
        created_at=ended - timedelta(seconds=5),
        completed_at=ended,
    )


async def test_prune_by_hand(database_url: str, fresh_schema: str, tmp_path: Path) -> None:
    store = PostgresExecutionStore(database_url, schema=fresh_schema, apply_migrations=True)
    await store.start()
    old = _record("wf", ExecutionStatus.COMPLETED, 40)
    old_other = _record("other", ExecutionStatus.FAILED, 40)
    young = _record("wf", ExecutionStatus.COMPLETED, 1)
    running = _record("wf", ExecutionStatus.RUNNING, 40)  # never, whatever its completed_at
    try:
        for record in (old, old_other, young, running):
            await store.create_execution(record, [NodeRecord("a", NodeStatus.SUCCEEDED)])
            log = LogRecord(record.execution_id, "info", "hello", record.created_at)
            await store.add_logs([log, log])

        def prune(*args: str) -> subprocess.CompletedProcess[str]:
            where = ("--schema", fresh_schema, "--database-url", database_url)
            return _spane(tmp_path, "--older-than", "30d", *where, *args)

        dry = await asyncio.to_thread(prune, "--dry-run")
        assert (dry.returncode, dry.stderr) == (0, ""), dry.stderr
        assert dry.stdout.startswith("would delete 2 execution(s), 8 row(s) in all")
        assert await store.get_execution_count() == 4

        one = await asyncio.to_thread(prune, "--status", "completed", "--workflow", "wf")
        assert (one.returncode, one.stderr) == (0, ""), one.stderr
        assert one.stdout.startswith("deleted 1 execution(s), 4 row(s) in all")
        assert await store.get_execution(old.execution_id) is None
        assert await store.get_logs(old.execution_id) == []

        rest = await asyncio.to_thread(prune)
        assert rest.stdout.startswith("deleted 1 execution(s), 4 row(s) in all"), rest.stderr
        assert await store.get_execution(old_other.execution_id) is None
        assert await store.get_execution(young.execution_id) is not None
        assert await store.get_execution(running.execution_id) is not None

        bad = await asyncio.to_thread(prune, "--status", "running")
        assert bad.returncode == 2
        assert "finished statuses" in bad.stderr
        worse = await asyncio.to_thread(_spane, tmp_path, "--older-than", "soon")
        assert worse.returncode == 2
        assert "duration" in worse.stderr
    finally:
        await store.close()


async def test_show_an_archived_execution(
    database_url: str, fresh_schema: str, tmp_path: Path
) -> None:
    from spane_py.archive import Archive
    from spane_py.engine.pruning import prune_older_than

    store = PostgresExecutionStore(database_url, schema=fresh_schema, apply_migrations=True)
    await store.start()
    old = _record("wf", ExecutionStatus.COMPLETED, 40)
    try:
        await store.create_execution(old, [NodeRecord("a", NodeStatus.SUCCEEDED, attempts=1)])
        archive = Archive(tmp_path / "archive")
        now = datetime.now(UTC)
        assert (await prune_older_than(store, timedelta(days=30), now, archive=archive)).rows == 2
    finally:
        await store.close()
    env = {k: v for k, v in os.environ.items() if "SPANE_" not in k}
    env.update(
        DATABASE_URL=database_url,
        SPANE_DB_SCHEMA=fresh_schema,
        SPANE_ARCHIVE_DIR=str(tmp_path / "archive"),
        COLUMNS="200",
    )

    def show(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "spane_py.cli", "executions", "show", *args],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    shown = await asyncio.to_thread(show, old.execution_id)
    assert shown.returncode == 0, shown.stderr
    first, node = shown.stdout.splitlines()
    assert first.startswith(f"execution {old.execution_id} (archived ")
    assert "): completed, workflow wf v1, finished " in first
    assert node.split() == ["a", "succeeded", "attempts=1"]
    as_json = await asyncio.to_thread(show, old.execution_id, "--json")
    assert '"archived": true' in as_json.stdout
    missing = await asyncio.to_thread(show, new_execution_id())
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr
