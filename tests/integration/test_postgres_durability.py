"""A worker warns at start when PostgreSQL may lose commits it acknowledged
(``synchronous_commit = off``), and says nothing when the setting is safe.

The setting is given to the store's own sessions only, through the database URL (asyncpg
sends unknown URL parameters to the server as session settings): the shared server and
every other test keep theirs.
"""

from __future__ import annotations

import logging
from urllib.parse import urlsplit, urlunsplit

import pytest

from spane_py import InMemoryExecutionStore, NodeRegistry, WorkflowEngine
from spane_py.engine.workers import STORE_NOT_DURABLE
from spane_py.stores.postgres.durability import durability_problems
from spane_py.stores.postgres.store import PostgresExecutionStore


def with_setting(url: str, name: str, value: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{name}={value}" if parts.query else f"{name}={value}"
    return urlunsplit(parts._replace(query=query))


def durability_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if getattr(r, "event", None) == STORE_NOT_DURABLE]


@pytest.mark.parametrize("value", ["off", "on", "local", "remote_write"])
async def test_worker_start_warns_only_when_synchronous_commit_is_off(
    database_url: str,
    pg_schema: str,
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
    value: str,
) -> None:
    store = PostgresExecutionStore(
        with_setting(database_url, "synchronous_commit", value),
        schema=pg_schema,
        apply_migrations=False,
        min_pool_size=1,
        max_pool_size=2,
    )
    engine = WorkflowEngine(NodeRegistry(), store, redis_url=redis_url, key_prefix=key_prefix)
    caplog.set_level(logging.INFO, logger="spane_py.worker")
    async with engine:
        # The session really runs with the setting the test asked for.
        assert await store.pool.fetchval("SELECT current_setting('synchronous_commit')") == value
        await engine.start_workers(1)
        await engine.start_workers(1)  # a second worker of the same engine: no second warning
        await engine.stop_workers(grace_seconds=1.0)
        await engine.purge()
    warned = durability_records(caplog)
    if value == "off":
        assert len(warned) == 1, [r.getMessage() for r in caplog.records]
        record = warned[0]
        assert record.levelno == logging.WARNING
        assert record.name == "spane_py.worker"
        message = record.getMessage()
        assert "synchronous_commit is off" in message
        assert "run twice" in message
        assert "docs/deploying.md" in message
    else:
        assert warned == [], [r.getMessage() for r in warned]
        assert not any("synchronous_commit" in r.getMessage() for r in caplog.records)


async def test_run_worker_warns_too(
    database_url: str,
    pg_schema: str,
    redis_url: str,
    key_prefix: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``spane worker`` runs ``run_worker`` (here in burst mode: it returns when idle)."""
    store = PostgresExecutionStore(
        with_setting(database_url, "synchronous_commit", "off"),
        schema=pg_schema,
        apply_migrations=False,
        min_pool_size=1,
        max_pool_size=2,
    )
    engine = WorkflowEngine(NodeRegistry(), store, redis_url=redis_url, key_prefix=key_prefix)
    caplog.set_level(logging.INFO, logger="spane_py.worker")
    async with engine:
        await engine.run_until_idle(1)
        await engine.purge()
    assert len(durability_records(caplog)) == 1


async def test_the_in_memory_store_has_nothing_to_warn_about(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    engine = WorkflowEngine(
        NodeRegistry(), InMemoryExecutionStore(), redis_url=redis_url, key_prefix=key_prefix
    )
    caplog.set_level(logging.INFO, logger="spane_py.worker")
    async with engine:
        await engine.run_until_idle(1)
        await engine.purge()
    assert durability_records(caplog) == []


@pytest.mark.parametrize(
    ("synchronous_commit", "fsync", "named"),
    [
        ("off", "on", ["synchronous_commit"]),
        ("OFF", "on", ["synchronous_commit"]),
        ("on", "off", ["fsync"]),
        ("off", "off", ["synchronous_commit", "fsync"]),
        ("on", "on", []),
        ("local", "on", []),
        ("remote_write", "on", []),
        ("remote_apply", "on", []),
    ],
)
def test_which_settings_are_reported(synchronous_commit: str, fsync: str, named: list[str]) -> None:
    problems = durability_problems(synchronous_commit, fsync)
    assert len(problems) == len(named)
    for problem, name in zip(problems, named, strict=True):
        assert name in problem
