"""Settings read from the environment, for the ``spane`` command (configuration at the edges).

Core classes take explicit keyword arguments; only the CLI and the API server
read the environment, through ``SpaneSettings``.

Redis and the store:

- ``REDIS_URL``: Redis to use; unset: an embedded server is started (zero setup).
- ``DATABASE_URL``: PostgreSQL for the store; unset: the in-memory store or, with
  ``SPANE_STORE=postgres``, the embedded server in ``.spane/pg`` (migrated when it starts).
- ``SPANE_STORE``: ``memory`` or ``postgres`` (the ``--store`` option); default:
  ``postgres`` when ``DATABASE_URL`` is set, else ``memory``.
- ``SPANE_DB_SCHEMA``: PostgreSQL schema of spane_py's tables (``spane``).
- ``SPANE_DB_POOL_MIN`` / ``SPANE_DB_POOL_MAX``: connections the store keeps open / may
  open (2 / 20).
- ``SPANE_DB_STATEMENT_TIMEOUT_MS``: how long one statement may run (30000).
- ``SPANE_DB_LOG``: ``1`` prints database connect, migrate and pool events on stderr,
  ``verbose`` every statement too (read by the PostgreSQL store itself).

Engines and workers:

- ``SPANE_KEY_PREFIX``: prefix of every Redis key of the engine (``spane``).
- ``SPANE_CONCURRENCY``: jobs a worker runs at once (10).
- ``SPANE_QUEUES``: the queues a worker consumes, comma-separated (``--queues``; default:
  every queue the app's node types and workflows run on).
- ``SPANE_POLL_DELAY``: seconds an idle worker waits before polling again (0.5).
- ``SPANE_LEASE_SECONDS``: a running job stays claimed this long unless its worker renews
  the lease, which it does every third of it (30).
- ``SPANE_SHUTDOWN_GRACE``: seconds running nodes get to finish when a worker is asked to
  stop (SIGTERM, SIGINT); the rest are cancelled and run again elsewhere (10).
- ``SPANE_SWEEP_INTERVAL``: seconds between two sweeps of a worker (15).
- ``SPANE_STALE_AFTER``: seconds a node may stay queued (or running) before a sweep sends
  its job again (30).
- ``SPANE_MAX_OUTPUT_BYTES``: the largest node output, in bytes of JSON (1048576).
- ``SPANE_MAX_ARTIFACT_BYTES``: the largest artifact a node may put, in bytes (67108864).
- ``SPANE_EVENT_HISTORY``: record the engine's events in the store as well (``1``; off by
  default: docs/observability.md says what it costs).
- ``SPANE_ARCHIVE_DIR``: a directory where retention writes expired executions (JSON
  lines) before deleting them, and where ``spane executions show`` and the API read them
  back (``WorkflowEngine(archive_dir=...)``; unset: not archived; docs/retention.md).
- ``SPANE_RETENTION``: how long finished executions are kept, by status:
  ``completed=7d,failed=30d,cancelled=7d`` (a status left out is kept forever), or one
  duration for all three (``30d``); durations as ``Retention`` takes them (``7d``,
  ``12h``, ``30m``, ``45s``, ``2w``, ``90`` seconds) (``WorkflowEngine(retention=...)``;
  unset: kept forever; docs/retention.md).
- ``SPANE_RETENTION_INTERVAL``: seconds between two retention rounds of a worker (60).
- ``SPANE_SCHEDULE_GRACE``: seconds a schedule's tick may be late and still run; older
  ones follow the schedule's missed policy (10).
- ``SPANE_SCHEDULE_REFRESH``: at most this many seconds pass before a worker's scheduler
  sees a schedule another process registered (5).
- ``SPANE_GLOBAL_RATE_LIMIT``: ``MAX/SECONDS``, at most MAX node starts in any SECONDS
  across every worker of the key prefix (``WorkflowEngine(global_rate_limit=...)``;
  unset: none). Per-type limits are set in code, with the executors.
- ``SPANE_LOG_LEVEL``: log level of ``spane worker`` and ``spane api`` (``INFO``; other
  commands: warnings).

- ``SPANE_METRICS_PORT``: ``spane worker`` serves Prometheus metrics on this port at
  ``/metrics`` (the ``--metrics-port`` option; unset: no server; 0: any free port). Read by
  the command only, not by ``engine_kwargs()``: two processes on one host would want the
  same port.
- ``SPANE_METRICS_ADDR``: the address that server listens on (``0.0.0.0``).

The API server's own variables (``SPANE_API_TOKEN``, ``SPANE_API_CORS_ORIGINS``) are read
by ``spane_py.api.settings.ApiSettings``.

An application module that ``spane worker`` loads builds its engine with
``WorkflowEngine(registry, **SpaneSettings().engine_kwargs())`` to honour the same
variables, the store included (``make_store()`` alone builds the configured store).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from spane_py.errors import ConfigurationError
from spane_py.retention import PRUNABLE, Retention, parse_duration

if TYPE_CHECKING:
    from spane_py.stores.base import ExecutionStore

StoreKind = Literal["memory", "postgres"]
EMBEDDED_PG_DIR = ".spane/pg"


class SpaneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPANE_", extra="ignore")

    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "SPANE_REDIS_URL")
    )
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "SPANE_DATABASE_URL")
    )
    store: StoreKind | None = None
    db_schema: str = "spane"
    db_pool_min: int = Field(2, ge=1)
    db_pool_max: int = Field(20, ge=1)
    db_statement_timeout_ms: int = Field(30_000, ge=1)
    key_prefix: str = "spane"
    concurrency: int = Field(10, ge=1)
    queues: str | None = None  # comma-separated, as ``--queues``
    poll_delay: float = Field(0.5, gt=0)
    lease_seconds: float = Field(30.0, ge=1)
    shutdown_grace: float = Field(10.0, ge=0)
    sweep_interval: float = Field(15.0, gt=0)
    stale_after: float = Field(30.0, gt=0)
    max_output_bytes: int = Field(1 << 20, ge=1)
    max_artifact_bytes: int = Field(64 << 20, ge=1)
    event_history: bool = False
    archive_dir: str | None = None
    retention: str | None = None  # "completed=7d,failed=30d" or "30d"
    retention_interval: float = Field(60.0, gt=0, allow_inf_nan=False)
    schedule_grace: float = Field(10.0, gt=0)
    schedule_refresh: float = Field(5.0, gt=0)
    global_rate_limit: str | None = None
    log_level: str = "INFO"
    metrics_port: int | None = Field(None, ge=0, le=65535)
    metrics_addr: str = "0.0.0.0"

    @field_validator("global_rate_limit")
    @classmethod
    def _rate(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            _parse_rate(value)  # refused here, so that the command names the variable
        return value

    @field_validator("retention")
    @classmethod
    def _retention(cls, value: str | None) -> str | None:
        if value is not None and value.strip():
            _parse_retention(value)  # refused here, so that the command names the variable
        return value

    @model_validator(mode="after")
    def _pool_sizes(self) -> SpaneSettings:
        if self.db_pool_min > self.db_pool_max:
            raise ValueError(
                f"SPANE_DB_POOL_MIN ({self.db_pool_min}) is larger than SPANE_DB_POOL_MAX "
                f"({self.db_pool_max})"
            )
        return self

    @property
    def store_kind(self) -> StoreKind:
        """``store`` when set, else ``postgres`` when a database URL is, else ``memory``."""
        if self.store is not None:
            return self.store
        return "postgres" if self.database_url else "memory"

    @property
    def embedded_postgres(self) -> bool:
        """True when the store is PostgreSQL and no URL is set: the embedded server."""
        return self.store_kind == "postgres" and not self.database_url

    def make_store(self, *, apply_migrations: bool | None = None) -> ExecutionStore:
        """A new, not yet started store of the configured kind.

        PostgreSQL: ``DATABASE_URL`` (unset: the embedded server in ``.spane/pg``, which
        is migrated when it starts), schema ``SPANE_DB_SCHEMA``. ``apply_migrations``
        (default: only the embedded server) migrates the schema when the store starts;
        otherwise a schema not at this code's revision is refused with a message naming
        ``spane db upgrade``. Raises ConfigurationError for a bad schema name, or when the
        ``postgres`` extra is not installed."""
        if self.store_kind == "memory":
            from spane_py.stores.memory import InMemoryExecutionStore

            return InMemoryExecutionStore()
        try:
            from spane_py.stores.postgres.store import PostgresExecutionStore
        except ImportError as exc:
            raise ConfigurationError(
                f"the PostgreSQL store needs the postgres extra ({exc.name or exc} is not "
                "installed): pip install 'spane-py[postgres]'"
            ) from exc
        return PostgresExecutionStore(
            self.database_url or None,
            schema=self.db_schema,
            min_pool_size=self.db_pool_min,
            max_pool_size=self.db_pool_max,
            statement_timeout_ms=self.db_statement_timeout_ms,
            apply_migrations=apply_migrations,
            embedded_dir=EMBEDDED_PG_DIR,
        )

    def engine_kwargs(self, *, store: bool = True) -> dict[str, Any]:
        """Keyword arguments for ``WorkflowEngine`` taken from these settings: Redis, key
        prefix, worker timings (poll, lease, shutdown grace, sweeper), output and artifact
        limits, retention and (unless ``store=False``) a new store from ``make_store()``."""
        kwargs: dict[str, Any] = {
            "redis_url": self.redis_url or None,
            "key_prefix": self.key_prefix,
            "poll_delay": self.poll_delay,
            "lease_seconds": self.lease_seconds,
            "shutdown_grace": self.shutdown_grace,
            "sweep_interval_seconds": self.sweep_interval,
            "stale_after_seconds": self.stale_after,
            "max_output_bytes": self.max_output_bytes,
            "max_artifact_bytes": self.max_artifact_bytes,
            "event_history": self.event_history,
            "schedule_grace_seconds": self.schedule_grace,
            "schedule_refresh_seconds": self.schedule_refresh,
            "retention_interval_seconds": self.retention_interval,
        }
        if self.archive_dir:
            kwargs["archive_dir"] = self.archive_dir
        if self.retention and self.retention.strip():
            kwargs["retention"] = _parse_retention(self.retention)
        if self.global_rate_limit and self.global_rate_limit.strip():
            kwargs["global_rate_limit"] = _parse_rate(self.global_rate_limit)
        if store:
            kwargs["store"] = self.make_store()
        return kwargs


def _parse_rate(text: str) -> tuple[int, float]:
    """``"100/1"`` -> ``(100, 1.0)``: MAX starts per SECONDS."""
    from spane_py.traffic.policies import RateLimit

    max_calls, sep, per = text.strip().partition("/")
    try:
        if not sep:
            raise ValueError
        limit = RateLimit(int(max_calls), float(per))
    except (ValueError, ConfigurationError):
        raise ValueError(
            f"must be MAX/SECONDS with MAX a positive integer and SECONDS a positive number "
            f"(for example 100/1), got {text!r}"
        ) from None
    return limit.max_calls, limit.per_seconds


_RETENTION_FORM = (
    "SPANE_RETENTION is STATUS=DURATION pairs separated by commas (for example "
    "completed=7d,failed=30d,cancelled=7d; STATUS one of completed, failed, cancelled) "
    "or one DURATION for all three (for example 30d)"
)


def _parse_retention(text: str) -> Retention:
    """``"completed=7d,failed=30d"`` -> ``Retention(completed="7d", failed="30d")``;
    ``"30d"`` -> the same duration for every status. A ValueError names the bad part."""
    statuses = [status.value for status in PRUNABLE]
    parts = [part.strip() for part in text.strip().split(",")]
    if len(parts) == 1 and "=" not in parts[0]:
        duration = _retention_duration(parts[0])
        return Retention(**dict.fromkeys(statuses, duration))
    durations: dict[str, timedelta] = {}
    for part in parts:
        if not part:
            raise ValueError(f"an empty part in {text!r}: {_RETENTION_FORM}")
        name, sep, value = (p.strip() for p in part.partition("="))
        if not sep:
            raise ValueError(
                f"{part!r} has no STATUS= in {text!r} (a single duration for all three "
                f"statuses stands alone): {_RETENTION_FORM}"
            )
        status = name.lower()
        if status not in statuses:
            raise ValueError(
                f"unknown status {name!r} in {part!r}: SPANE_RETENTION takes {', '.join(statuses)}"
            )
        if status in durations:
            raise ValueError(f"{status} is given twice in {text!r}: SPANE_RETENTION sets it once")
        durations[status] = _retention_duration(value, part=part)
    return Retention(**durations)


def _retention_duration(value: str, *, part: str | None = None) -> timedelta:
    try:
        return parse_duration(value)
    except ValueError as exc:
        where = f" in {part!r}" if part is not None else ""
        raise ValueError(f"bad duration {value!r}{where} (SPANE_RETENTION): {exc}") from None


__all__ = ["EMBEDDED_PG_DIR", "SpaneSettings", "StoreKind"]
