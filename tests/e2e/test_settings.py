"""``SpaneSettings``: what the ``spane`` command and application modules build from the
environment (no I/O: stores are built, not started)."""

from __future__ import annotations

import os

import pytest

from spane_py import (
    ConfigurationError,
    InMemoryExecutionStore,
    NodeRegistry,
    RateLimit,
    WorkflowEngine,
)
from spane_py.settings import SpaneSettings
from spane_py.stores.postgres.store import PostgresExecutionStore


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("SPANE_") or name in ("DATABASE_URL", "REDIS_URL"):
            monkeypatch.delenv(name)


def test_the_store_is_in_memory_without_a_database_url() -> None:
    settings = SpaneSettings()
    assert settings.store_kind == "memory"
    assert not settings.embedded_postgres
    assert isinstance(settings.make_store(), InMemoryExecutionStore)


def test_a_database_url_means_postgres(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/app")
    monkeypatch.setenv("SPANE_DB_SCHEMA", "tenant_a")
    monkeypatch.setenv("SPANE_DB_POOL_MAX", "5")
    monkeypatch.setenv("SPANE_DB_STATEMENT_TIMEOUT_MS", "1500")
    settings = SpaneSettings()
    assert settings.store_kind == "postgres"
    assert not settings.embedded_postgres
    store = settings.make_store()
    assert isinstance(store, PostgresExecutionStore)
    assert store.dsn == "postgresql://db.example/app"
    assert store.schema == "tenant_a"
    assert (store.options.min_size, store.options.max_size) == (2, 5)
    assert store.options.statement_timeout_ms == 1500


def test_spane_store_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://db.example/app")
    monkeypatch.setenv("SPANE_STORE", "memory")
    assert SpaneSettings().store_kind == "memory"
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("SPANE_STORE", "postgres")
    settings = SpaneSettings()
    assert settings.store_kind == "postgres"
    assert settings.embedded_postgres  # no URL: the embedded server in .spane/pg
    store = settings.make_store()
    assert isinstance(store, PostgresExecutionStore)
    assert store.dsn is None  # chosen when it starts


def test_a_bad_schema_name_is_refused_when_the_store_is_built(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SPANE_STORE", "postgres")
    monkeypatch.setenv("SPANE_DB_SCHEMA", "Bad-Name")
    with pytest.raises(ConfigurationError, match="invalid schema name 'Bad-Name'"):
        SpaneSettings().make_store()


def test_engine_kwargs_configure_the_engine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REDIS_URL", "redis://redis.example:6379/1")
    monkeypatch.setenv("SPANE_KEY_PREFIX", "app1")
    monkeypatch.setenv("SPANE_POLL_DELAY", "0.25")
    monkeypatch.setenv("SPANE_LEASE_SECONDS", "12")
    monkeypatch.setenv("SPANE_SHUTDOWN_GRACE", "3")
    monkeypatch.setenv("SPANE_SWEEP_INTERVAL", "5")
    monkeypatch.setenv("SPANE_STALE_AFTER", "20")
    monkeypatch.setenv("SPANE_MAX_OUTPUT_BYTES", "4096")
    monkeypatch.setenv("SPANE_SCHEDULE_GRACE", "30")
    monkeypatch.setenv("SPANE_SCHEDULE_REFRESH", "2.5")
    monkeypatch.setenv("SPANE_GLOBAL_RATE_LIMIT", "100/0.5")
    engine = WorkflowEngine(NodeRegistry(), **SpaneSettings().engine_kwargs())
    assert engine.redis_url == "redis://redis.example:6379/1"
    assert engine.key_prefix == "app1"
    assert engine.poll_delay == 0.25
    assert engine.lease_seconds == 12
    assert engine.shutdown_grace == 3
    assert engine.sweep_interval_seconds == 5
    assert engine.stale_after_seconds == 20
    assert engine.max_output_bytes == 4096
    assert (engine.schedule_grace_seconds, engine.schedule_refresh_seconds) == (30, 2.5)
    assert engine.global_rate_limit == RateLimit(100, 0.5)
    assert isinstance(engine.store, InMemoryExecutionStore)


def test_engine_kwargs_without_a_store() -> None:
    kwargs = SpaneSettings().engine_kwargs(store=False)
    assert "store" not in kwargs
    assert "global_rate_limit" not in kwargs  # unset: no global limit
    store = InMemoryExecutionStore(max_executions=10)
    assert WorkflowEngine(NodeRegistry(), store, **kwargs).store is store


def test_each_call_builds_a_new_store() -> None:
    settings = SpaneSettings()
    assert settings.engine_kwargs()["store"] is not settings.engine_kwargs()["store"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SPANE_STORE", "sqlite"),
        ("SPANE_LEASE_SECONDS", "0.5"),
        ("SPANE_SWEEP_INTERVAL", "0"),
        ("SPANE_DB_POOL_MAX", "0"),
        ("SPANE_GLOBAL_RATE_LIMIT", "100"),
        ("SPANE_GLOBAL_RATE_LIMIT", "0/1"),
        ("SPANE_GLOBAL_RATE_LIMIT", "10/fast"),
    ],
)
def test_bad_values_are_refused(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=name.removeprefix("SPANE_").lower()):
        SpaneSettings()
