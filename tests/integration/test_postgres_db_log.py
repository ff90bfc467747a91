"""``SPANE_DB_LOG``: a process that starts a PostgreSQL store prints its database lifecycle to
stderr — ``1``: connect, migrate and pool events; ``verbose``: every statement too; unset:
nothing. Passwords never appear."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]

SCRIPT = """
import asyncio, sys
from spane_py.stores.postgres.store import PostgresExecutionStore

async def main():
    store = PostgresExecutionStore(sys.argv[1], schema=sys.argv[2], apply_migrations=True)
    async with store:
        print("executions:", await store.get_execution_count())

asyncio.run(main())
"""


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, hosts = parts.netloc.rpartition("@")
    user = (user.split(":", 1)[0] or "postgres") + f":{password}"
    return urlunsplit(parts._replace(netloc=f"{user}@{hosts}"))


@pytest.fixture
async def schema(database_url: str) -> AsyncIterator[str]:
    """A schema name the store migrates itself; dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    yield name
    await drop_schema(database_url, name)


def run_store(url: str, schema: str, log: str | None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPANE_")}
    env.pop("DATABASE_URL", None)
    if log is not None:
        env["SPANE_DB_LOG"] = log
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, url, schema],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def drop_schema(database_url: str, name: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
    finally:
        await conn.close()


async def test_spane_db_log(database_url: str, schema: str) -> None:
    # Trust authentication ignores the password; it is there to be hidden.
    url = _with_password(database_url, "s3cret-pw")

    quiet = await asyncio.to_thread(run_store, url, schema, None)  # migrates the schema
    assert quiet.returncode == 0, quiet.stderr
    assert quiet.stdout == "executions: 0\n"
    assert "spane_py.db" not in quiet.stderr

    await drop_schema(database_url, schema)  # so that the next run migrates it
    events = await asyncio.to_thread(run_store, url, schema, "1")
    assert events.returncode == 0, events.stderr
    err = events.stderr
    lines = [line for line in err.splitlines() if " spane_py.db " in line]
    assert lines, err
    assert any(f"migrating schema {schema} of" in line for line in lines), err
    assert any(f"schema '{schema}' migrated from None to" in line for line in lines), err
    assert any("pool: connection opened (pid " in line for line in lines), err
    assert any("connected to " in line and f"(schema {schema}, pool " in line for line in lines)
    assert any("pool closed" in line for line in lines), err
    assert "statement (" not in err
    assert "s3cret-pw" not in err
    assert "***" in err  # the URL is shown, its password hidden

    verbose = await asyncio.to_thread(run_store, url, schema, "verbose")
    assert verbose.returncode == 0, verbose.stderr
    err = verbose.stderr
    assert f"schema '{schema}' already at" in err
    assert "pool: connection opened (pid " in err
    # Each statement with its time, its text as sent (possibly over several lines).
    assert re.search(
        r"spane_py\.db statement \([\d.]+ ms\):\s+SELECT count\(\*\) FROM executions", err
    ), err
    assert "s3cret-pw" not in err
