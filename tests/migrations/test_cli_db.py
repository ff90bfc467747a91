"""``spane db upgrade`` and ``spane db current``, run as subprocesses."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from spane_py.stores.postgres import migrate

Run = Callable[..., subprocess.CompletedProcess[str]]
HEAD = "0008"


@pytest.fixture
def base_env() -> dict[str, str]:
    """The environment minus DATABASE_URL and SPANE_*: tests say what they want."""
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("SPANE_")
    }
    env.update(COLUMNS="200", PYTHONIOENCODING="utf-8")
    return env


@pytest.fixture
def spane(base_env: dict[str, str], tmp_path: Path) -> Run:
    """``spane(*args, env=None)``: ``python -m spane_py.cli *args`` in an empty directory."""

    def run(
        *args: str, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "spane_py.cli", *args],
            cwd=tmp_path,
            env=dict(base_env if env is None else env),
            capture_output=True,
            text=True,
            encoding="utf-8",
            timeout=timeout,
            check=False,
        )

    return run


async def _run(spane: Run, *args: str, env: Mapping[str, str] | None = None) -> Any:
    return await asyncio.to_thread(spane, *args, env=env)


def test_upgrade_then_current(spane: Run, database_url: str, fresh_schema: str) -> None:
    where = f"schema {fresh_schema!r} at {migrate.redact(database_url)}"
    args = ("--schema", fresh_schema, "--database-url", database_url)

    first = spane("db", "upgrade", *args)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout == f"{where}: upgraded from nothing to {HEAD} (head)\n"

    again = spane("db", "upgrade", *args)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout == f"{where}: already at {HEAD} (head)\n"

    current = spane("db", "current", *args)
    assert (current.returncode, current.stderr) == (0, "")
    assert current.stdout.splitlines() == [
        f"database: {HEAD} ({where})",
        f"code:     {HEAD} (head)",
        "up to date",
    ]


def test_current_of_a_schema_not_migrated_exits_1(
    spane: Run, database_url: str, fresh_schema: str
) -> None:
    result = spane("db", "current", "--schema", fresh_schema, "--database-url", database_url)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("database: none (schema ")
    assert lines[1] == f"code:     {HEAD} (head)"
    assert len(lines) == 2
    assert result.stderr.startswith("error: the database has no spane_py schema yet")
    assert result.stderr.rstrip().endswith(f"run `spane db upgrade --schema {fresh_schema}`")


def test_database_url_and_schema_from_the_environment(
    spane: Run, base_env: dict[str, str], database_url: str, fresh_schema: str
) -> None:
    env = {**base_env, "DATABASE_URL": database_url, "SPANE_DB_SCHEMA": fresh_schema}
    result = spane("db", "upgrade", env=env)
    assert result.returncode == 0, result.stderr
    assert f"schema {fresh_schema!r}" in result.stdout
    assert "upgraded from nothing" in result.stdout
    current = spane("db", "current", env=env)
    assert current.stdout.splitlines()[2] == "up to date"


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("mysql://u:pw@h/db", "error: invalid database URL 'mysql://u:***@h/db': it must start "
         "with postgresql:// (or postgres://)"),
        ("postgresql://h:99999/db", "error: invalid database URL 'postgresql://h:99999/db': "
         "bad port '99999'"),
        ("", "error: the database URL is empty"),
    ],
)  # fmt: skip
def test_bad_database_url_exits_2(spane: Run, url: str, message: str) -> None:
    result = spane("db", "upgrade", "--database-url", url)
    assert result.returncode == 2
    assert result.stderr.strip() == message
    assert result.stdout == ""


def test_current_with_a_bad_database_url_exits_2(spane: Run) -> None:
    result = spane("db", "current", "--database-url", "mysql://h/db")
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid database URL 'mysql://h/db'")


@pytest.mark.parametrize("command", ["upgrade", "current"])
def test_unreachable_server_exits_1(spane: Run, command: str) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"postgresql://u:s3cret@127.0.0.1:{port}/db"
    result = spane("db", command, "--database-url", url)
    assert result.returncode == 1
    assert result.stderr.startswith(
        f"error: cannot connect to PostgreSQL at postgresql://u:***@127.0.0.1:{port}/db: "
        "ConnectionRefusedError"
    )
    assert "Traceback" not in result.stderr
    assert "s3cret" not in result.stderr + result.stdout


def test_bad_schema_name_exits_2(spane: Run, database_url: str) -> None:
    result = spane("db", "upgrade", "--schema", "No-Good", "--database-url", database_url)
    assert result.returncode == 2
    assert result.stderr.startswith("error: invalid schema name 'No-Good'")


def test_newer_database_exits_1(spane: Run, database_url: str, pg_schema: str) -> None:
    import asyncpg

    async def bump() -> None:
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(f"UPDATE {pg_schema}.alembic_version SET version_num = '0099'")
        finally:
            await conn.close()

    asyncio.run(bump())
    result = spane("db", "upgrade", "--schema", pg_schema, "--database-url", database_url)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: database schema {pg_schema!r} is at revision 0099, newer than this spane_py "
        f"({HEAD}): upgrade spane_py"
    )


def test_sql_needs_no_database(spane: Run, tmp_path: Path) -> None:
    result = spane("db", "upgrade", "--sql", "--schema", "app")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("BEGIN;")
    assert "CREATE TABLE executions (" in result.stdout
    assert not (tmp_path / ".spane").exists()  # no embedded server was started


def test_missing_postgres_extra_exits_2(base_env: dict[str, str], tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['alembic'] = None\n"
        "from spane_py.cli import main\n"
        "sys.argv = ['spane', 'db', 'upgrade', '--database-url', 'postgresql://h/db']\n"
        "main()\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=base_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "error: `spane db` needs the postgres extra (alembic is not installed): "
        "pip install 'spane-py[postgres]'"
    )


@pytest.mark.slow
def test_without_a_url_the_embedded_server_in_dot_spane(spane: Run, tmp_path: Path) -> None:
    result = spane("db", "upgrade", timeout=120)
    assert result.returncode == 0, result.stderr
    assert "no DATABASE_URL: using the embedded PostgreSQL in .spane/pg" in result.stderr
    assert "schema 'spane' at postgresql://postgres:***@/postgres?host=" in result.stdout
    assert result.stdout.rstrip().endswith(f"upgraded from nothing to {HEAD} (head)")
    assert (tmp_path / ".spane" / "pg" / "PG_VERSION").is_file()

    current = spane("db", "current", timeout=120)
    assert current.returncode == 0, current.stderr
    assert current.stdout.splitlines()[0].startswith(f"database: {HEAD} (schema 'spane' at ")
    assert current.stdout.splitlines()[2] == "up to date"
