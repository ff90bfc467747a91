"""Helpers for end-to-end tests: run the ``spane`` command and example scripts as
subprocesses, from the repository root, with a time limit.

Subprocesses get the test's Redis and key prefix, and no ``DATABASE_URL`` nor ``SPANE_*``
variable from the outside: a test that wants PostgreSQL says so (``pg_env``), always with
a schema of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path

import pytest
import redis

REPO_ROOT = Path(__file__).resolve().parents[2]

Run = Callable[..., subprocess.CompletedProcess[str]]


def run_process(
    args: list[str],
    *,
    env: Mapping[str, str],
    timeout: float = 60.0,
    cwd: Path = REPO_ROOT,
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=dict(env),
        capture_output=True,
        text=True,
        encoding="utf-8",
        timeout=timeout,
        check=False,
    )


@pytest.fixture
def cli_env(redis_url: str, key_prefix: str) -> dict[str, str]:
    """The environment of a subprocess: the test Redis and a key prefix of its own; no
    ``DATABASE_URL`` (the store is in memory unless a test asks for PostgreSQL)."""
    env = {
        k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("SPANE_")
    }
    env.update(
        REDIS_URL=redis_url,
        SPANE_KEY_PREFIX=key_prefix,
        COLUMNS="120",
        PYTHONIOENCODING="utf-8",
    )
    return env


@pytest.fixture
def spane(cli_env: dict[str, str]) -> Run:
    """``spane(*args, env=None, timeout=60, cwd=REPO_ROOT)``: run ``python -m spane_py.cli
    *args``."""

    def run(
        *args: str,
        env: Mapping[str, str] | None = None,
        timeout: float = 60.0,
        cwd: Path = REPO_ROOT,
    ) -> subprocess.CompletedProcess[str]:
        return run_process(
            [sys.executable, "-m", "spane_py.cli", *args],
            env=cli_env if env is None else env,
            timeout=timeout,
            cwd=cwd,
        )

    return run


@pytest.fixture(autouse=True)
def _purge_prefix(redis_url: str, key_prefix: str) -> Iterator[None]:
    """Delete the keys the subprocesses of a test left under its prefix."""
    yield
    delete_keys(redis_url, f"{key_prefix}:*", f"arq:*:{key_prefix}:*", f"{key_prefix}-demo-*")


def delete_keys(redis_url: str, *patterns: str) -> None:
    """Delete the Redis keys matching ``patterns`` (what a test's servers and subprocesses
    left under its prefix)."""
    client = redis.Redis.from_url(redis_url)
    try:
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=500))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
async def fresh_schema(database_url: str) -> AsyncIterator[str]:
    """The name of a schema that does not exist yet (nothing migrates it); dropped after
    the test, whatever created it."""
    import asyncpg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    yield schema
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        await conn.close()


def pg_env(env: Mapping[str, str], database_url: str, schema: str) -> dict[str, str]:
    """``env`` pointed at the test database and ``schema`` (the store follows from
    ``DATABASE_URL``)."""
    return {**env, "DATABASE_URL": database_url, "SPANE_DB_SCHEMA": schema}
