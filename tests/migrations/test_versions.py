"""Which revision a database is at, and what the store is told when it does not match:
missing schema, older revision, newer revision, at head; downgrade; schema names; rights."""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from spane_py.errors import ConfigurationError, SchemaVersionError, StatePersistenceError
from spane_py.records import ArtifactRecord, EventRecord
from spane_py.state import ExecutionStatus
from spane_py.stores.postgres import migrate
from spane_py.stores.postgres.store import PostgresExecutionStore
from spane_py.stores.postgres.tables import metadata
from tests.migrations.conftest import catalog
from tests.migrations.newer import NEWER, NewerMigrations

HEAD = "0008"


@pytest.fixture
def scripts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[NewerMigrations]:
    """Ours by default; ``use_newer()`` adds a revision NEWER this code does not have."""
    s = NewerMigrations(monkeypatch, tmp_path)
    try:
        yield s
    finally:
        s.use_ours()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(database_url)
    try:
        yield connection
    finally:
        await connection.close()


def _message(exc: pytest.ExceptionInfo[SchemaVersionError]) -> str:
    return str(exc.value)


async def test_at_head_passes(conn: asyncpg.Connection, pg_schema: str) -> None:
    assert await migrate.current_revision(conn, pg_schema) == HEAD
    await migrate.check_schema(conn, pg_schema)  # no error
    assert migrate.mismatch(pg_schema, HEAD) is None


async def test_missing_schema(conn: asyncpg.Connection, fresh_schema: str) -> None:
    assert await migrate.current_revision(conn, fresh_schema) is None
    with pytest.raises(SchemaVersionError) as exc:
        await migrate.check_schema(conn, fresh_schema)
    assert _message(exc) == (
        f"the database has no spane_py schema yet (schema {fresh_schema!r} has no revision; "
        f"this spane_py needs {HEAD}): run `spane db upgrade --schema {fresh_schema}`"
    )
    assert exc.value.code == "SCHEMA_VERSION_MISMATCH"


async def test_schema_without_version_table(conn: asyncpg.Connection, fresh_schema: str) -> None:
    await conn.execute(f"CREATE SCHEMA {fresh_schema}; CREATE TABLE {fresh_schema}.other (x int)")
    assert await migrate.current_revision(conn, fresh_schema) is None
    with pytest.raises(SchemaVersionError, match="has no spane_py schema yet"):
        await migrate.check_schema(conn, fresh_schema)


def test_the_default_schema_needs_no_schema_option() -> None:
    message = migrate.mismatch("spane", None)
    assert message is not None
    assert message.endswith("run `spane db upgrade`")
    assert "'spane'" in message


async def test_older_revision(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str, scripts: NewerMigrations
) -> None:
    """A database at HEAD seen by code whose head is NEWER; then upgraded to it."""
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    scripts.use_newer()
    assert migrate.head_revision() == NEWER
    with pytest.raises(SchemaVersionError) as exc:
        await migrate.check_schema(conn, fresh_schema)
    assert _message(exc) == (
        f"database schema {fresh_schema!r} is at revision {HEAD}, this spane_py needs {NEWER}: "
        f"run `spane db upgrade --schema {fresh_schema}`"
    )
    result = await migrate.apply_migrations(database_url, schema=fresh_schema)
    assert (result.before, result.after, result.changed) == (HEAD, NEWER, True)
    await migrate.check_schema(conn, fresh_schema)
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'workflows'",
        fresh_schema,
    )
    assert "note" in {r["column_name"] for r in columns}
    # ... and back: the test revision's downgrade, then ours.
    assert await migrate.downgrade(database_url, schema=fresh_schema, revision=HEAD) == HEAD


async def test_newer_revision_from_a_newer_spane_py(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str, scripts: NewerMigrations
) -> None:
    scripts.use_newer()
    assert await migrate.upgrade(database_url, schema=fresh_schema) == NEWER
    scripts.use_ours()
    expected = (
        f"database schema {fresh_schema!r} is at revision {NEWER}, newer than this spane_py "
        f"({HEAD}): upgrade spane_py"
    )
    with pytest.raises(SchemaVersionError) as exc:
        await migrate.check_schema(conn, fresh_schema)
    assert _message(exc) == expected
    # Upgrading with the older code refuses the same way and changes nothing.
    with pytest.raises(SchemaVersionError) as exc2:
        await migrate.upgrade(database_url, schema=fresh_schema)
    assert _message(exc2) == expected
    assert await migrate.current_revision(conn, fresh_schema) == NEWER


async def test_unknown_revision(conn: asyncpg.Connection, pg_schema: str) -> None:
    await conn.execute(f"UPDATE {pg_schema}.alembic_version SET version_num = 'f00d'")
    with pytest.raises(SchemaVersionError) as exc:
        await migrate.check_schema(conn, pg_schema)
    assert _message(exc) == (
        f"database schema {pg_schema!r} is at revision f00d, newer than this spane_py "
        f"({HEAD}): upgrade spane_py"
    )


async def test_upgrade_to_an_unknown_target(database_url: str, fresh_schema: str) -> None:
    with pytest.raises(ConfigurationError, match=r"cannot migrate schema .*'0042'"):
        await migrate.upgrade(database_url, schema=fresh_schema, revision="0042")


async def test_upgrade_from_0001_keeps_the_data_and_admits_waiting_nodes(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str
) -> None:
    """0001 -> 0002 on a database with rows: they survive (the new columns NULL); a node
    may then be 'waiting'. Back to 0001 is refused while one waits (0001 cannot say it)."""
    assert await migrate.upgrade(database_url, schema=fresh_schema, revision="0001") == "0001"
    execution_id = str(uuid.uuid4())
    await conn.execute(
        f"SET search_path TO {fresh_schema};"
        "INSERT INTO executions (execution_id, workflow_id, workflow_version, status, "
        f"  initial_data, created_at) VALUES ('{execution_id}', 'wf', 1, 'running', '1', now());"
        f"INSERT INTO node_results (execution_id, node_id, status) VALUES ('{execution_id}', "
        "  'a', 'succeeded');"
    )
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    row = await conn.fetchrow("SELECT status, wake_at, wait FROM node_results")
    assert tuple(row) == ("succeeded", None, None)
    await conn.execute(
        "INSERT INTO node_results (execution_id, node_id, status, wake_at, wait) "
        "VALUES ($1, 'b', 'waiting', now(), '{\"kind\": \"timer\"}')",
        execution_id,
    )
    await conn.execute(
        "INSERT INTO resume_tokens (token, execution_id, node_id, generation, created_at) "
        "VALUES ('t', $1, 'b', 0, now())",
        execution_id,
    )
    with pytest.raises(StatePersistenceError, match="ck_node_results_status"):
        await migrate.downgrade(database_url, schema=fresh_schema, revision="0001")
    assert await migrate.current_revision(conn, fresh_schema) == HEAD  # nothing changed
    await conn.execute("UPDATE node_results SET status = 'succeeded' WHERE node_id = 'b'")
    assert await migrate.downgrade(database_url, schema=fresh_schema, revision="0001") == "0001"
    assert await conn.fetchval("SELECT count(*) FROM node_results") == 2
    assert await conn.fetchval("SELECT to_regclass('resume_tokens')") is None


async def test_upgrade_from_0003_moves_the_waited_child_into_its_column(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str
) -> None:
    """0003 -> 0004: a sub-workflow node waiting now gets ``wait_child`` from its wait JSON
    (the sweeper still finds it once its child ends); other nodes, a malformed id and a node
    no longer waiting keep NULL. Back to 0003 drops the column and keeps the JSON."""
    assert await migrate.upgrade(database_url, schema=fresh_schema, revision="0003") == "0003"
    parent, child = str(uuid.uuid4()), str(uuid.uuid4())
    await conn.execute(f"SET search_path TO {fresh_schema}")
    for execution_id, status in ((parent, "running"), (child, "completed")):
        await conn.execute(
            "INSERT INTO executions (execution_id, workflow_id, workflow_version, status, "
            "initial_data, created_at, completed_at) "
            "VALUES ($1, 'wf', 1, $2, '1', now(), now() - interval '1 hour')",
            execution_id,
            status,
        )
    rows = [
        ("sub", "waiting", {"kind": "child", "child": child}),
        ("bad", "waiting", {"kind": "child", "child": "not-an-id"}),
        ("timer", "waiting", {"kind": "timer"}),
        ("done", "succeeded", {"kind": "child", "child": child}),
    ]
    for node_id, status, wait in rows:
        await conn.execute(
            "INSERT INTO node_results (execution_id, node_id, status, wait) "
            "VALUES ($1, $2, $3, $4::jsonb)",
            parent,
            node_id,
            status,
            json.dumps(wait),
        )
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    found = await conn.fetch("SELECT node_id, wait_child::text FROM node_results ORDER BY 1")
    assert [tuple(r) for r in found] == [
        ("bad", None),
        ("done", None),
        ("sub", child),
        ("timer", None),
    ]
    store = PostgresExecutionStore(database_url, schema=fresh_schema)
    await store.start()
    try:
        pending = await store.list_pending_nodes(older_than=datetime.now(UTC))
    finally:
        await store.close()
    assert [(p.execution_id, p.node_id) for p in pending] == [(parent, "sub")]

    assert await migrate.downgrade(database_url, schema=fresh_schema, revision="0003") == "0003"
    assert (
        await conn.fetchval("SELECT count(*) FROM node_results WHERE wait ->> 'child' = $1", child)
        == 2
    )


async def test_upgrade_from_0004_leaves_executions_without_a_concurrency_key(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str
) -> None:
    """0004 -> 0005: executions created before have no ``concurrency_key`` (NULL), and a
    queued one is still admitted under a key limit (only the workflow's limit applies to
    it). Back to 0004 drops the column and its index."""
    assert await migrate.upgrade(database_url, schema=fresh_schema, revision="0004") == "0004"
    waiting = str(uuid.uuid4())
    await conn.execute(f"SET search_path TO {fresh_schema}")
    await conn.execute(
        "INSERT INTO executions (execution_id, workflow_id, workflow_version, status, "
        "initial_data, created_at) VALUES ($1, 'wf', 1, 'queued', '1', now())",
        waiting,
    )
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    assert await conn.fetchval("SELECT concurrency_key FROM executions") is None
    store = PostgresExecutionStore(database_url, schema=fresh_schema)
    await store.start()
    try:
        admitted = await store.admit_queued("wf", 5, datetime.now(UTC), key_limit=1)
    finally:
        await store.close()
    assert [(r.execution_id, r.concurrency_key) for r in admitted] == [(waiting, None)]

    assert await migrate.downgrade(database_url, schema=fresh_schema, revision="0004") == "0004"
    assert await conn.fetchval("SELECT to_regclass('ix_executions_concurrency')") is None
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'executions'",
        fresh_schema,
    )
    assert "concurrency_key" not in {r["column_name"] for r in columns}


async def test_upgrade_from_0005_adds_outputs_artifacts_and_events(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str
) -> None:
    """0005 -> 0006: an execution completed before has no output (NULL: None) and keeps
    everything else; artifacts and events can be written for it at once. Back to 0005 drops
    the column and both tables, and keeps the execution."""
    assert await migrate.upgrade(database_url, schema=fresh_schema, revision="0005") == "0005"
    done = str(uuid.uuid4())
    await conn.execute(f"SET search_path TO {fresh_schema}")
    await conn.execute(
        "INSERT INTO executions (execution_id, workflow_id, workflow_version, status, "
        "initial_data, created_at, completed_at) "
        "VALUES ($1, 'wf', 1, 'completed', '{\"n\": 1}', now(), now())",
        done,
    )
    await conn.execute(
        "INSERT INTO node_results (execution_id, node_id, status, output) "
        "VALUES ($1, 'a', 'succeeded', '[1, 2]')",
        done,
    )
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    assert await conn.fetchval("SELECT output FROM executions") is None
    store = PostgresExecutionStore(database_url, schema=fresh_schema)
    await store.start()
    try:
        record = await store.get_execution(done)
        assert record is not None
        assert (record.status, record.output, record.initial_data) == (
            ExecutionStatus.COMPLETED,
            None,
            '{"n": 1}',
        )
        assert (await store.get_node_results(done))["a"].data == [1, 2]
        now = datetime.now(UTC)
        await store.put_artifact(ArtifactRecord(done, "x", "text/plain", 2, now), b"hi")
        await store.add_events([EventRecord("execution.completed", now, done, "wf")])
        assert [a.name for a in await store.list_artifacts(done)] == ["x"]
        assert [e.type for e in await store.get_events(execution_id=done)] == [
            "execution.completed"
        ]
    finally:
        await store.close()

    assert await migrate.downgrade(database_url, schema=fresh_schema, revision="0005") == "0005"
    assert await conn.fetchval("SELECT to_regclass('artifacts')") is None
    assert await conn.fetchval("SELECT to_regclass('events')") is None
    columns = await conn.fetch(
        "SELECT column_name FROM information_schema.columns "
        "WHERE table_schema = $1 AND table_name = 'executions'",
        fresh_schema,
    )
    assert "output" not in {r["column_name"] for r in columns}
    assert await conn.fetchval("SELECT count(*) FROM executions") == 1


async def test_downgrade_to_base_then_upgrade_again(
    database_url: str, conn: asyncpg.Connection, fresh_schema: str, pg_schema: str
) -> None:
    assert await migrate.upgrade(database_url, schema=fresh_schema) == HEAD
    assert await migrate.downgrade(database_url, schema=fresh_schema) is None
    tables = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", fresh_schema)
    assert [r["tablename"] for r in tables] == ["alembic_version"]
    assert await migrate.current_revision(conn, fresh_schema) is None
    with pytest.raises(SchemaVersionError, match="has no spane_py schema yet"):
        await migrate.check_schema(conn, fresh_schema)

    result = await migrate.apply_migrations(database_url, schema=fresh_schema)
    assert (result.before, result.after) == (None, HEAD)
    assert await catalog(conn, fresh_schema) == await catalog(conn, pg_schema)
    await migrate.check_schema(conn, fresh_schema)


async def test_upgrade_twice_is_a_no_op(database_url: str, fresh_schema: str) -> None:
    first = await migrate.apply_migrations(database_url, schema=fresh_schema)
    second = await migrate.apply_migrations(database_url, schema=fresh_schema)
    assert (first.before, first.after, first.changed) == (None, HEAD, True)
    assert (second.before, second.after, second.changed) == (HEAD, HEAD, False)


@pytest.mark.parametrize(
    "name",
    ["", "Spane", "1abc", "a-b", "a b", 'x"; DROP TABLE y; --', "a" * 64, "pg_mine",
     "information_schema", "é"],
)  # fmt: skip
async def test_bad_schema_names_are_refused_before_any_connection(name: str) -> None:
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        migrate.validate_schema_name(name)
    unreachable = "postgresql://nobody@127.0.0.1:1/none"
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        await migrate.upgrade(unreachable, schema=name)
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        await migrate.check_schema(object(), name)
    with pytest.raises(ConfigurationError, match="invalid schema name"):
        migrate.upgrade_sql(schema=name)


@pytest.mark.parametrize("name", ["spane", "_x", "a" * 63, "t_0123456789ab", "public"])
def test_good_schema_names(name: str) -> None:
    assert migrate.validate_schema_name(name) == name


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


async def test_rights(database_url: str, conn: asyncpg.Connection, fresh_schema: str) -> None:
    """A role that may not create schemas gets a clear error; given a schema of its own
    (made by a DBA), it migrates it."""
    role = f"t_role_{uuid.uuid4().hex[:8]}"
    await conn.execute(f"CREATE ROLE {role} LOGIN")
    try:
        url = _as_user(database_url, role)
        with pytest.raises(StatePersistenceError) as exc:
            await migrate.upgrade(url, schema=fresh_schema)
        assert re.search(
            rf"migrating schema '{fresh_schema}' at .* failed: "
            r"InsufficientPrivilegeError: permission denied for database",
            str(exc.value),
        ), exc.value
        await conn.execute(f"CREATE SCHEMA {fresh_schema} AUTHORIZATION {role}")
        assert await migrate.upgrade(url, schema=fresh_schema) == HEAD
        await migrate.check_schema(conn, fresh_schema)
        owners = await conn.fetch(
            "SELECT DISTINCT tableowner FROM pg_tables WHERE schemaname = $1", fresh_schema
        )
        assert [r["tableowner"] for r in owners] == [role]
    finally:
        await conn.execute(f"DROP SCHEMA IF EXISTS {fresh_schema} CASCADE; DROP ROLE {role}")


def test_every_table_is_created_by_the_migrations() -> None:
    sql = migrate.upgrade_sql(schema="spane")
    created = set(re.findall(r"^CREATE TABLE (\w+) \(", sql, flags=re.M))
    assert created == set(metadata.tables)
