"""``spane`` on the PostgreSQL store, as a user runs it: ``--store``, ``SPANE_STORE``,
``DATABASE_URL``, migrations (the demo applies them, workers never do), the embedded server.

Every test works in a schema of its own in the test database (``pg_schema``: migrated;
``fresh_schema``: not created yet), dropped afterwards.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from spane_py.stores.postgres import migrate
from tests.e2e.conftest import Run, pg_env


async def _query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def query(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    return asyncio.run(_query(database_url, sql, *args))


def schema_exists(database_url: str, schema: str) -> bool:
    rows = query(database_url, "SELECT 1 FROM pg_namespace WHERE nspname = $1", schema)
    return bool(rows)


# spane demo --------------------------------------------------------------------------


def test_demo_on_postgres_migrates_a_fresh_schema_and_keeps_the_executions(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = pg_env(cli_env, database_url, fresh_schema)
    proc = spane("demo", "--store", "postgres", "-n", "3", "--show", "1", env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())  # the console wraps long lines
    assert f"Store PostgreSQL {migrate.redact(database_url)}, schema '{fresh_schema}'" in out
    assert "3/3 executions completed" in out

    (version,) = query(database_url, f'SELECT version_num FROM "{fresh_schema}".alembic_version')
    assert version[0] == migrate.head_revision()
    rows = query(
        database_url, f'SELECT status, count(*) FROM "{fresh_schema}".executions GROUP BY 1'
    )
    assert [(r[0], r[1]) for r in rows] == [("completed", 3)]


@pytest.mark.parametrize(
    ("store_env", "expected"),
    [
        ({}, "postgres"),  # DATABASE_URL is set: PostgreSQL by default
        ({"SPANE_STORE": "postgres"}, "postgres"),
        ({"SPANE_STORE": "memory"}, "memory"),  # in memory although DATABASE_URL is set
    ],
)
def test_demo_store_follows_spane_store_then_database_url(
    spane: Run,
    cli_env: dict[str, str],
    database_url: str,
    fresh_schema: str,
    store_env: dict[str, str],
    expected: str,
) -> None:
    env = {**pg_env(cli_env, database_url, fresh_schema), **store_env}
    proc = spane("demo", "--show", "0", env=env, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "1/1 executions completed" in proc.stdout
    if expected == "postgres":
        assert "Store   PostgreSQL" in proc.stdout
        assert schema_exists(database_url, fresh_schema)
    else:
        assert "Store   in-memory" in proc.stdout
        assert not schema_exists(database_url, fresh_schema)


def test_the_store_option_wins_over_the_environment(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = {**pg_env(cli_env, database_url, fresh_schema), "SPANE_STORE": "postgres"}
    proc = spane("demo", "--store", "memory", "--show", "0", env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Store   in-memory" in proc.stdout
    assert not schema_exists(database_url, fresh_schema)


def test_demo_without_database_url_stays_in_memory(spane: Run) -> None:
    proc = spane("demo", "--show", "0", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Store   in-memory (--store postgres for PostgreSQL)" in proc.stdout


@pytest.mark.parametrize(
    ("args", "env_update", "message"),
    [
        (["--store", "sqlite"], {}, "Invalid value for '--store'"),
        ([], {"SPANE_STORE": "sqlite"}, "SPANE_STORE: Input should be 'memory' or 'postgres'"),
        (
            ["--store", "postgres"],
            {"SPANE_DB_SCHEMA": "No-Good"},
            "invalid schema name 'No-Good'",
        ),
        (
            ["--store", "postgres"],
            {"DATABASE_URL": "mysql://db.example/app"},
            "it must start with postgresql://",
        ),
        (
            [],
            {"SPANE_DB_POOL_MIN": "30", "DATABASE_URL": "postgresql://db.example/app"},
            "SPANE_DB_POOL_MIN (30) is larger than SPANE_DB_POOL_MAX (20)",
        ),
    ],
)
@pytest.mark.parametrize("command", ["demo", "worker", "run"])
def test_bad_store_settings_exit_2_before_anything_starts(
    spane: Run,
    cli_env: dict[str, str],
    command: str,
    args: list[str],
    env_update: dict[str, str],
    message: str,
) -> None:
    argv = {
        "demo": ["demo"],
        "worker": ["worker", "tests.e2e.app:engine", "--burst"],
        "run": ["run", "tests.e2e.app:create_engine", "e2e-greet"],
    }[command]
    proc = spane(*argv, *args, env={**cli_env, **env_update}, timeout=30)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr


def test_missing_postgres_extra_exits_2(cli_env: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['asyncpg'] = None\n"
        "from spane_py.cli import main\n"
        "sys.argv = ['spane', 'demo', '--store', 'postgres']\n"
        "main()\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "the PostgreSQL store needs the postgres extra (asyncpg is not installed)" in (
        " ".join(proc.stderr.split())
    )
    assert not (tmp_path / ".spane").exists()


@pytest.mark.slow
def test_demo_on_the_embedded_postgres_in_dot_spane(
    spane: Run, cli_env: dict[str, str], tmp_path: Path
) -> None:
    proc = spane("demo", "--store", "postgres", "-n", "2", env=cli_env, cwd=tmp_path, timeout=180)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = " ".join(proc.stdout.split())
    assert (
        "Store PostgreSQL embedded server in .spane/pg, as DATABASE_URL is not set, "
        "schema 'spane'" in out
    )
    assert "2/2 executions completed" in out
    data = tmp_path / ".spane" / "pg"
    assert (data / "PG_VERSION").is_file()
    # The server belonged to the demo alone: it stops when the demo exits.
    deadline = time.monotonic() + 30
    while (data / "postmaster.pid").exists():
        assert time.monotonic() < deadline, "the embedded PostgreSQL is still running"
        time.sleep(0.2)

    # A second run finds the cluster (and the schema, already migrated).
    again = spane("demo", "--show", "0", env={**cli_env, "SPANE_STORE": "postgres"}, cwd=tmp_path)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "1/1 executions completed" in again.stdout


# spane worker / spane run ------------------------------------------------------------


@pytest.mark.parametrize("via", ["option", "environment"])
def test_worker_never_migrates_and_names_the_command_that_does(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str, via: str
) -> None:
    env = pg_env(cli_env, database_url, fresh_schema)
    args = ["worker", "tests.e2e.app:engine", "--burst"]
    if via == "option":
        args += ["--store", "postgres"]
        env.pop("DATABASE_URL")
        env["SPANE_DATABASE_URL"] = database_url  # the other spelling: same setting
    else:
        env["SPANE_STORE"] = "postgres"
    proc = spane(*args, env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert f"schema '{fresh_schema}' has no revision" in err
    assert f"run `spane db upgrade --schema {fresh_schema}`" in err
    assert "Traceback" not in proc.stderr
    assert not schema_exists(database_url, fresh_schema)


def test_run_never_migrates_either(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = pg_env(cli_env, database_url, fresh_schema)
    proc = spane("run", "tests.e2e.app:create_engine", "e2e-greet", env=env, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"run `spane db upgrade --schema {fresh_schema}`" in " ".join(proc.stderr.split())
    assert not schema_exists(database_url, fresh_schema)


def test_worker_after_spane_db_upgrade_runs_and_names_its_store(
    spane: Run, cli_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = pg_env(cli_env, database_url, fresh_schema)
    upgrade = spane("db", "upgrade", env=env, timeout=60)
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    proc = spane("worker", "tests.e2e.app:engine", "--burst", env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    store = f"PostgreSQL {migrate.redact(database_url)}, schema '{fresh_schema}'"
    assert f"spane worker tests.e2e.app:engine: store {store}" in err
    assert "in-memory" not in err


def test_runs_are_kept_and_definitions_load_in_other_processes(
    spane: Run, cli_env: dict[str, str], database_url: str, pg_schema: str
) -> None:
    env = pg_env(cli_env, database_url, pg_schema)
    first = spane(
        "run", "tests.e2e.app:create_engine", "e2e-greet", "--data", '{"name": "Ada"}', "--json",
        env=env,
    )  # fmt: skip
    assert first.returncode == 0, first.stdout + first.stderr
    state = json.loads(first.stdout)
    assert state["status"] == "completed"

    # tests.e2e.app:engine registers the node functions, not the workflow: the version the
    # first process registered is loaded from the database.
    second = spane("run", "tests.e2e.app:engine", "e2e-greet", "--json", env=env)
    assert second.returncode == 0, second.stdout + second.stderr
    assert json.loads(second.stdout)["node_results"]["whisper"]["data"] == "hello world..."

    rows = query(
        database_url,
        f'SELECT execution_id FROM "{pg_schema}".executions WHERE status = $1',
        "completed",
    )
    assert state["execution_id"] in {str(r[0]) for r in rows}
    assert len(rows) == 2


def test_an_unknown_workflow_on_postgres_exits_2(
    spane: Run, cli_env: dict[str, str], database_url: str, pg_schema: str
) -> None:
    env = pg_env(cli_env, database_url, pg_schema)
    proc = spane("run", "tests.e2e.app:engine", "e2e-greet", env=env, timeout=60)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "workflow 'e2e-greet' is not registered" in proc.stderr


def test_worker_warns_when_the_app_ignores_the_store_setting(
    spane: Run, cli_env: dict[str, str], database_url: str, pg_schema: str
) -> None:
    env = pg_env(cli_env, database_url, pg_schema)
    proc = spane("worker", "tests.e2e.app:memory_engine", "--burst", env=env, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    err = " ".join(proc.stderr.split())
    assert "uses the in-memory store although the settings ask for postgres" in err
    assert "store in-memory" in err


@pytest.mark.parametrize("command", ["demo", "worker"])
def test_an_unreachable_database_exits_1_naming_it(
    spane: Run, cli_env: dict[str, str], command: str
) -> None:
    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    argv = ["demo"] if command == "demo" else ["worker", "tests.e2e.app:engine", "--burst"]
    proc = spane(*argv, env={**cli_env, "DATABASE_URL": url}, timeout=60)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: cannot connect to PostgreSQL at {url}" in " ".join(proc.stderr.split())
    assert "Traceback" not in proc.stderr
