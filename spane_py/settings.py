"""Settings read from the environment, for the ``spane`` command (configuration at the edges).

Core classes take explicit keyword arguments; only the CLI (and, later, the API server)
reads the environment, through ``SpaneSettings``:

=====================  ==============================================================
``REDIS_URL``          Redis to use; unset: an embedded server is started (zero setup)
``DATABASE_URL``       PostgreSQL for the store; unset: the in-memory store (``spane db``:
                       the embedded server in ``.spane/pg``)
``SPANE_DB_SCHEMA``    PostgreSQL schema of spane_py's tables (``spane``)
``SPANE_KEY_PREFIX``   prefix of every Redis key of the engines the CLI builds (``spane``)
``SPANE_CONCURRENCY``  jobs a worker runs at once (10)
``SPANE_POLL_DELAY``   seconds an idle worker waits before polling again (0.5)
``SPANE_LOG_LEVEL``    log level of ``spane worker`` (``INFO``; other commands: warnings)
=====================  ==============================================================

An application module that ``spane worker`` loads may build its engine with
``WorkflowEngine(registry, **SpaneSettings().engine_kwargs())`` to honour the same variables.
"""

from __future__ import annotations

from typing import Any

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class SpaneSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="SPANE_", extra="ignore")

    redis_url: str | None = Field(
        None, validation_alias=AliasChoices("REDIS_URL", "SPANE_REDIS_URL")
    )
    database_url: str | None = Field(
        None, validation_alias=AliasChoices("DATABASE_URL", "SPANE_DATABASE_URL")
    )
    db_schema: str = "spane"
    key_prefix: str = "spane"
    concurrency: int = Field(10, ge=1)
    poll_delay: float = Field(0.5, gt=0)
    log_level: str = "INFO"

    def engine_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``WorkflowEngine`` taken from these settings."""
        return {
            "redis_url": self.redis_url or None,
            "key_prefix": self.key_prefix,
            "poll_delay": self.poll_delay,
        }


__all__ = ["SpaneSettings"]
