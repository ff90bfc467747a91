"""0007 -> 0008: logs and spans become partitioned by month, with their rows.

The upgrade creates a partition for every month with rows, copies the rows into them,
keeps ``log_id`` and goes on after the largest; the downgrade copies the rows of stored
executions back into plain tables."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest

from spane_py.stores.postgres import migrate

LOGS = [  # (month, log_id)
    (datetime(2025, 11, 3, 8, tzinfo=UTC), 7),
    (datetime(2025, 11, 30, 23, 59, 59, 999999, tzinfo=UTC), 8),
    (datetime(2026, 2, 1, tzinfo=UTC), 40),
]


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


async def partitions(conn: asyncpg.Connection, schema: str, table: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
        "JOIN pg_class p ON p.oid = i.inhparent JOIN pg_namespace n ON n.oid = p.relnamespace "
        "WHERE n.nspname = $1 AND p.relname = $2",
        schema,
        table,
    )
    return {r["relname"] for r in rows}


async def test_upgrade_from_0007_partitions_logs_and_spans_with_their_rows(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str
) -> None:
    assert await migrate.upgrade(database_url, schema=fresh_schema, revision="0007") == "0007"
    await conn.execute(f"SET search_path TO {fresh_schema}")
    kept, gone = str(uuid.uuid4()), str(uuid.uuid4())
    for eid in (kept, gone):
        await conn.execute(
            "INSERT INTO executions (execution_id, workflow_id, workflow_version, status, "
            "initial_data, created_at) VALUES ($1, 'wf', 1, 'running', 'null', $2)",
            eid,
            LOGS[0][0],
        )
    for when, log_id in LOGS:
        await conn.execute(
            "INSERT INTO logs (log_id, execution_id, level, message, logged_at) "
            "VALUES ($1, $2, 'info', $3, $4)",
            log_id,
            kept,
            f"line {log_id}",
            when,
        )
    await conn.execute(
        "INSERT INTO spans (span_id, execution_id, name, status, started_at) "
        "VALUES ('s1', $1, 'a', 'succeeded', $2)",
        kept,
        LOGS[2][0],
    )

    assert await migrate.upgrade(database_url, schema=fresh_schema) == "0008"
    assert await partitions(conn, fresh_schema, "logs") == {
        "logs_default",
        "logs_p202511",
        "logs_p202602",
    }
    assert await partitions(conn, fresh_schema, "spans") == {"spans_default", "spans_p202602"}
    kinds = await conn.fetch(
        "SELECT relname, relkind::text FROM pg_class c JOIN pg_namespace n "
        "ON n.oid = c.relnamespace WHERE n.nspname = $1 AND relname IN ('logs', 'spans')",
        fresh_schema,
    )
    assert {r["relname"]: r["relkind"] for r in kinds} == {"logs": "p", "spans": "p"}
    rows = await conn.fetch("SELECT tableoid::regclass::text AS part, log_id FROM logs")
    assert sorted((r["part"], r["log_id"]) for r in rows) == [
        ("logs_p202511", 7),
        ("logs_p202511", 8),
        ("logs_p202602", 40),
    ]
    assert await conn.fetchval("SELECT tableoid::regclass::text FROM spans") == "spans_p202602"
    # The identity goes on after the largest id; a row of a month without a partition
    # lands in the default one.
    new_id = await conn.fetchval(
        "INSERT INTO logs (execution_id, level, message, logged_at) "
        "VALUES ($1, 'info', 'new', '2001-01-01T00:00:00Z') RETURNING log_id",
        kept,
    )
    assert new_id == 41
    assert (
        await conn.fetchval("SELECT tableoid::regclass::text FROM logs WHERE log_id = 41")
        == "logs_default"
    )
    # Logs no longer reference their execution: deleting one leaves its rows to retention
    # (here, to the downgrade, which copies only the rows of stored executions).
    await conn.execute(
        "INSERT INTO logs (execution_id, level, message, logged_at) "
        "VALUES ($1, 'info', 'orphan', now())",
        gone,
    )
    await conn.execute("DELETE FROM executions WHERE execution_id = $1", gone)
    assert await conn.fetchval("SELECT count(*) FROM logs WHERE message = 'orphan'") == 1

    assert await migrate.downgrade(database_url, schema=fresh_schema, revision="0007") == "0007"
    assert await partitions(conn, fresh_schema, "logs") == set()
    assert sorted(r["log_id"] for r in await conn.fetch("SELECT log_id FROM logs")) == [
        7,
        8,
        40,
        41,
    ]
    assert await conn.fetchval("SELECT count(*) FROM spans") == 1
    # 0007's foreign keys are back: a log of an unknown execution is refused again.
    with pytest.raises(asyncpg.ForeignKeyViolationError):
        await conn.execute(
            "INSERT INTO logs (execution_id, level, message, logged_at) "
            "VALUES ($1, 'info', 'x', now())",
            gone,
        )
    assert (
        await conn.fetchval(
            "INSERT INTO logs (execution_id, level, message, logged_at) "
            "VALUES ($1, 'info', 'x', now()) RETURNING log_id",
            kept,
        )
        > 42  # the refused row took 42
    )
    assert await migrate.upgrade(database_url, schema=fresh_schema) == "0008"
    assert await conn.fetchval("SELECT count(*) FROM logs") == 5  # 7, 8, 40, 41 and the last
