"""The PostgreSQL store at startup, when something is wrong: one clear spane_py error each,
naming the cause, raised by ``start()`` (and so by the engine's ``start()``), never a raw
driver error — malformed URL, unreachable server, unknown database or role, a schema that
is missing, older or newer than the code, missing rights. And node outputs over the size
limit: that node fails, the worker goes on.
"""

from __future__ import annotations

import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from spane_py import ExecutionContext, NodeRegistry, RetryPolicy, WorkflowEngine
from spane_py.definitions.loading import parse_definition
from spane_py.errors import (
    ConfigurationError,
    SchemaVersionError,
    SpaneError,
    StatePersistenceError,
)
from spane_py.stores.postgres import migrate
from spane_py.stores.postgres.store import PostgresExecutionStore
from tests.migrations.newer import NEWER, OURS, NewerMigrations


async def start_fails(store: PostgresExecutionStore) -> SpaneError:
    """Start ``store``, expecting a spane_py error; check it left nothing open."""
    with pytest.raises(SpaneError) as caught:
        await store.start()
    with pytest.raises(StatePersistenceError, match="not started"):
        store.pool  # noqa: B018 - no pool kept after a failed start
    await store.close()  # harmless
    return caught.value


def _as_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    hosts = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


def _with_database(url: str, database: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{database}"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# Malformed URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("mysql://u:s3cret@h/db", "must start with postgresql://"),
        ("127.0.0.1:5432", "must start with postgresql://"),
        ("postgresql://u:s3cret@h:port/db", "bad port 'port'"),
        ("postgresql://u:s3cret@h:99999/db", "bad port '99999'"),
        ("postgresql://u:s3cret@[::1/db", "Invalid IPv6 URL"),
        ("postgresql://u:s3cret@h/db?connect_timeout=soon", "connect_timeout"),
        ("   ", "empty"),
    ],
)
async def test_a_malformed_url_is_a_configuration_error(url: str, why: str) -> None:
    error = await start_fails(PostgresExecutionStore(url))
    assert isinstance(error, ConfigurationError)
    assert why in str(error)
    assert "database URL" in str(error)
    assert "s3cret" not in str(error)


async def test_a_malformed_database_url_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgres//nobody@localhost/db")
    error = await start_fails(PostgresExecutionStore())
    assert isinstance(error, ConfigurationError)
    assert "invalid database URL 'postgres//nobody@localhost/db'" in str(error)


async def test_the_engine_start_raises_the_store_error_and_connects_nothing(
    redis_url: str, key_prefix: str
) -> None:
    engine = WorkflowEngine(
        NodeRegistry(),
        PostgresExecutionStore("mysql://u@h/db"),
        redis_url=redis_url,
        key_prefix=key_prefix,
    )
    with pytest.raises(ConfigurationError, match="must start with postgresql://"):
        await engine.start()
    with pytest.raises(ConfigurationError, match="not started"):
        engine.queue  # noqa: B018 - Redis was never connected
    await engine.close()


# Servers that cannot be reached --------------------------------------------------------------


async def test_nothing_listening_fails_fast_naming_the_address() -> None:
    url = f"postgresql://u:s3cret@127.0.0.1:{_free_port()}/db?connect_timeout=1"
    started = time.monotonic()
    error = await start_fails(PostgresExecutionStore(url))
    assert time.monotonic() - started < 3
    assert isinstance(error, StatePersistenceError)
    message = str(error)
    assert message.startswith("cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:")
    assert "ConnectionRefusedError" in message
    assert "s3cret" not in message
    assert isinstance(error.__cause__, OSError)


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A TCP port that accepts connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield int(s.getsockname()[1])


async def test_a_server_that_never_answers_times_out_after_connect_timeout(
    silent_server: int,
) -> None:
    """The same words as ``spane db`` (``migrate.connect``) uses for the same failure."""
    url = f"postgresql://u@127.0.0.1:{silent_server}/db?connect_timeout=1"
    started = time.monotonic()
    error = await start_fails(PostgresExecutionStore(url))
    took = time.monotonic() - started
    assert 0.9 < took < 4, took
    assert isinstance(error, StatePersistenceError)
    message = str(error)
    assert message.startswith(f"cannot connect to PostgreSQL at {url.partition('?')[0]}")
    assert message.endswith(": no answer within 1 s"), message


async def test_an_unknown_host() -> None:
    error = await start_fails(
        PostgresExecutionStore("postgresql://u@no-such-host.invalid/db?connect_timeout=2")
    )
    assert isinstance(error, StatePersistenceError)
    assert "cannot connect to PostgreSQL at postgresql://u@no-such-host.invalid/db" in str(error)


async def test_an_unknown_database(database_url: str) -> None:
    url = _with_database(database_url, "no_such_database_here")
    error = await start_fails(PostgresExecutionStore(url))
    assert isinstance(error, StatePersistenceError)
    assert 'database "no_such_database_here" does not exist' in str(error)


async def test_an_unknown_role(database_url: str) -> None:
    url = _as_user(database_url, "no_such_role_here")
    error = await start_fails(PostgresExecutionStore(url))
    assert isinstance(error, StatePersistenceError)
    assert 'role "no_such_role_here" does not exist' in str(error)


# Schema versions ----------------------------------------------------------------------------


async def test_a_missing_schema_names_the_command_and_creates_nothing(database_url: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    error = await start_fails(
        PostgresExecutionStore(database_url, schema=schema, apply_migrations=False)
    )
    assert isinstance(error, SchemaVersionError)
    assert str(error).endswith(f"run `spane db upgrade --schema {schema}`")
    conn = await asyncpg.connect(database_url)
    try:
        exists = await conn.fetchval("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema)
    finally:
        await conn.close()
    assert exists == 0


async def test_an_existing_schema_without_spane_tables(database_url: str, pg_schema: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"DROP TABLE {pg_schema}.alembic_version")
    finally:
        await conn.close()
    error = await start_fails(
        PostgresExecutionStore(database_url, schema=pg_schema, apply_migrations=False)
    )
    assert isinstance(error, SchemaVersionError)
    assert "has no spane_py schema yet" in str(error)
    assert str(error).endswith(f"run `spane db upgrade --schema {pg_schema}`")


@pytest.fixture
def newer_code(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[NewerMigrations]:
    """The migrations of a newer spane_py, in force inside ``with newer_code:``."""
    code = NewerMigrations(monkeypatch, tmp_path)
    try:
        yield code
    finally:
        code.__exit__()


async def test_a_schema_older_than_the_code(
    database_url: str, pg_schema: str, newer_code: NewerMigrations
) -> None:
    with newer_code:
        error = await start_fails(
            PostgresExecutionStore(database_url, schema=pg_schema, apply_migrations=False)
        )
    assert isinstance(error, SchemaVersionError)
    assert str(error) == (
        f"database schema {pg_schema!r} is at revision {OURS}, this spane_py needs {NEWER}: "
        f"run `spane db upgrade --schema {pg_schema}`"
    )


async def test_a_schema_newer_than_the_code(
    database_url: str, pg_schema: str, newer_code: NewerMigrations
) -> None:
    with newer_code:
        assert await migrate.upgrade(database_url, schema=pg_schema) == NEWER
    expected = (
        f"database schema {pg_schema!r} is at revision {NEWER}, newer than this spane_py "
        f"({OURS}): upgrade spane_py"
    )
    for apply in (False, True):  # migrating on start cannot go backwards either
        error = await start_fails(
            PostgresExecutionStore(database_url, schema=pg_schema, apply_migrations=apply)
        )
        assert isinstance(error, SchemaVersionError)
        assert str(error) == expected
    with newer_code:  # leave it as the fixture made it
        await migrate.downgrade(database_url, schema=pg_schema, revision=OURS)


async def test_the_engine_start_refuses_a_schema_mismatch(
    database_url: str, redis_url: str, key_prefix: str
) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    engine = WorkflowEngine(
        NodeRegistry(),
        PostgresExecutionStore(database_url, schema=schema, apply_migrations=False),
        redis_url=redis_url,
        key_prefix=key_prefix,
    )
    with pytest.raises(SchemaVersionError, match=f"run `spane db upgrade --schema {schema}`"):
        await engine.start()
    await engine.close()


# Rights -------------------------------------------------------------------------------------


@pytest.fixture
async def role(database_url: str, pg_schema: str) -> AsyncIterator[str]:
    """A login role with no rights at all on ``pg_schema``; dropped afterwards."""
    name = f"t_role_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f"CREATE ROLE {name} LOGIN")
        try:
            yield name
        finally:
            await conn.execute(f"DROP OWNED BY {name}")  # its grants
            await conn.execute(f"DROP ROLE {name}")
    finally:
        await conn.close()


async def _admin(database_url: str, statement: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def test_no_rights_on_the_schema(database_url: str, pg_schema: str, role: str) -> None:
    error = await start_fails(
        PostgresExecutionStore(
            _as_user(database_url, role), schema=pg_schema, apply_migrations=False
        )
    )
    assert isinstance(error, StatePersistenceError)
    assert f"permission denied for schema {pg_schema}" in str(error)
    assert isinstance(error.__cause__, asyncpg.InsufficientPrivilegeError)


async def test_the_schema_but_no_rights_on_its_tables(
    database_url: str, pg_schema: str, role: str
) -> None:
    await _admin(database_url, f"GRANT USAGE ON SCHEMA {pg_schema} TO {role}")
    error = await start_fails(
        PostgresExecutionStore(
            _as_user(database_url, role), schema=pg_schema, apply_migrations=False
        )
    )
    assert isinstance(error, StatePersistenceError)
    assert "permission denied for table alembic_version" in str(error)


async def test_no_rights_to_migrate(database_url: str, role: str) -> None:
    schema = f"t_{uuid.uuid4().hex[:12]}"
    error = await start_fails(
        PostgresExecutionStore(_as_user(database_url, role), schema=schema, apply_migrations=True)
    )
    assert isinstance(error, StatePersistenceError)
    assert "permission denied for database" in str(error)


async def test_a_read_only_role_reads_and_its_first_write_names_the_missing_right(
    database_url: str, pg_schema: str, role: str
) -> None:
    """A role that may only read (a dashboard's) starts and reads; writing fails with a
    clear error."""
    await _admin(
        database_url,
        f"GRANT USAGE ON SCHEMA {pg_schema} TO {role}; "
        f"GRANT SELECT ON ALL TABLES IN SCHEMA {pg_schema} TO {role}",
    )
    async with PostgresExecutionStore(
        _as_user(database_url, role), schema=pg_schema, apply_migrations=False
    ) as store:
        assert await store.get_execution_count() == 0
        assert await store.list_workflows() == []
        definition = parse_definition({"id": "ro", "nodes": [{"id": "a", "type": "t"}]})
        with pytest.raises(StatePersistenceError) as caught:
            await store.save_workflow(definition, content_hash="h", change_notes=None)
    assert "saving a workflow failed: the database user lacks a permission" in str(caught.value)
    assert "permission denied for table workflows" in str(caught.value)


# Oversized node outputs ---------------------------------------------------------------------


@pytest.fixture
async def output_engine(
    database_url: str, pg_schema: str, redis_url: str, key_prefix: str
) -> AsyncIterator[Any]:
    """``make(**engine_options)``: engines on the test's schema, with a worker each."""
    made: list[WorkflowEngine] = []

    async def make(**options: Any) -> WorkflowEngine:
        reg = NodeRegistry()

        async def produce(ctx: ExecutionContext) -> Any:
            return ctx.input_data["char"] * ctx.input_data["count"]

        async def after(ctx: ExecutionContext) -> int:
            return len(ctx.input_data)

        reg.register("produce", produce)
        reg.register("after", after)
        store = PostgresExecutionStore(
            database_url, schema=pg_schema, apply_migrations=False, max_pool_size=4
        )
        engine = WorkflowEngine(
            reg, store, redis_url=redis_url, key_prefix=key_prefix, poll_delay=0.2, **options
        )
        await engine.start()
        made.append(engine)
        retry = RetryPolicy(max_attempts=3, backoff={"type": "fixed", "delay": 10})
        await engine.register_workflow(
            {"id": "out", "nodes": [
                {"id": "p", "type": "produce", "outputs": ["q"], "retryPolicy": retry},
                {"id": "q", "type": "after"}]}
        )  # fmt: skip
        await engine.start_workers(2)
        return engine

    try:
        yield make
    finally:
        for engine in made:
            await engine.stop_workers(grace_seconds=1)
            await engine.purge()
            await engine.close()


@pytest.mark.parametrize(
    ("char", "count", "size", "ok"),
    [
        ("x", 998, 1000, True),  # exactly at the limit (JSON adds the quotes)
        ("x", 999, 1001, False),
        ("é", 499, 1000, True),  # two bytes each in UTF-8
        ("é", 600, 1202, False),  # 600 characters, but 1202 bytes
    ],
)
async def test_an_output_over_the_limit_fails_its_node_and_the_worker_goes_on(
    output_engine: Any, char: str, count: int, size: int, ok: bool
) -> None:
    engine = await output_engine(max_output_bytes=1000)
    state = await engine.run_workflow("out", {"char": char, "count": count}, timeout=20)
    p = state.node_results["p"]
    if ok:
        assert state.status == "completed"
        assert state.node_results["q"].data == count
        return
    assert state.status == "failed"
    assert p.status == "failed"
    assert p.error == (f"the output of node 'p' is {size} bytes, over the limit of 1000 bytes")
    assert p.attempts == 1  # not retried: the same output would be refused again
    assert p.data is None
    assert "q" not in state.node_results or state.node_results["q"].status != "succeeded"
    # The worker goes on.
    after = await engine.run_workflow("out", {"char": "y", "count": 3}, timeout=20)
    assert after.status == "completed"


async def test_the_default_limit_is_one_mib(output_engine: Any) -> None:
    engine = await output_engine()
    assert engine.max_output_bytes == 1 << 20
    state = await engine.run_workflow("out", {"char": "x", "count": (1 << 20) - 2}, timeout=20)
    assert state.status == "completed"
    assert len(state.node_results["p"].data) == (1 << 20) - 2
    state = await engine.run_workflow("out", {"char": "x", "count": 1 << 20}, timeout=20)
    assert state.status == "failed"
    assert state.node_results["p"].error == (
        f"the output of node 'p' is {(1 << 20) + 2} bytes, over the limit of {1 << 20} bytes"
    )
