"""Connecting to PostgreSQL: the pool, retries across connection loss, errors that name
their cause, and ``SPANE_DB_LOG`` (``1``: connect, migrate and pool events; ``verbose``:
every statement too)."""

from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import asyncpg

from spane_py.errors import ConfigurationError, InvalidInputError, StatePersistenceError

logger = logging.getLogger("spane_py.db")
T = TypeVar("T")

# Errors after which the same operation may be tried again on a fresh connection.
RETRYABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable (ConnectionError is an OSError)
    asyncio.TimeoutError,
    asyncpg.ConnectionDoesNotExistError,
    asyncpg.CannotConnectNowError,  # starting up or shutting down
    asyncpg.TooManyConnectionsError,
    asyncpg.AdminShutdownError,
    asyncpg.CrashShutdownError,
    asyncpg.ConnectionFailureError,
    asyncpg.InterfaceError,  # e.g. "connection is closed"
    # A session ended by the server while idle: asyncpg reads the FATAL error before the
    # end of the stream and, for a moment, hands the connection out in a state where any
    # statement fails with "cannot switch to state N; another operation (2) is in progress".
    asyncpg.InternalClientError,
    asyncpg.SerializationError,
    asyncpg.DeadlockDetectedError,
)


@dataclass(frozen=True, slots=True)
class PoolOptions:
    min_size: int = 2
    max_size: int = 20
    statement_timeout_ms: int = 30_000
    connect_timeout_s: float = 10.0
    retry_for_s: float = 30.0  # keep retrying a lost connection this long, then fail


def configure_logging() -> str | None:
    """Honour ``SPANE_DB_LOG``: attach a stderr handler to ``spane_py.db`` when asked."""
    mode = os.environ.get("SPANE_DB_LOG", "").strip().lower() or None
    if mode and not any(getattr(h, "_spane_db", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s spane_py.db %(message)s"))
        handler._spane_db = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG if mode == "verbose" else logging.INFO)
    return mode


async def create_pool(dsn: str, schema: str, options: PoolOptions) -> asyncpg.Pool:
    """A pool whose connections work in ``schema``; startup errors name their cause."""
    from spane_py.stores.postgres.migrate import parse_dsn, redact

    dsn, connect_timeout = parse_dsn(dsn)  # ConfigurationError naming what is wrong
    verbose = configure_logging() == "verbose"
    where = redact(dsn)

    async def init(conn: asyncpg.Connection) -> None:
        logger.info("pool: connection opened (pid %s)", conn.get_server_pid())
        if verbose:
            conn.add_query_logger(
                lambda q: logger.debug("statement (%.1f ms): %s", q.elapsed * 1000, q.query)
            )

    async def reset(conn: asyncpg.Connection) -> None:
        # asyncpg's default reset costs a round trip on every release. The store never
        # changes session state (its settings come with the connection, its transactions
        # are context-managed): only a connection left inside a transaction needs care.
        if conn.is_in_transaction():
            await conn.execute("ROLLBACK")

    try:
        pool = await asyncpg.create_pool(
            dsn,
            reset=reset,
            min_size=options.min_size,
            max_size=options.max_size,
            timeout=connect_timeout or options.connect_timeout_s,
            init=init,
            server_settings={
                "search_path": schema,
                "statement_timeout": str(options.statement_timeout_ms),
                "application_name": "spane_py",
            },
        )
    except (ValueError, asyncpg.ClientConfigurationError) as exc:
        raise ConfigurationError(f"invalid DATABASE_URL {where!r}: {exc}") from exc
    except (asyncpg.InvalidPasswordError, asyncpg.InvalidAuthorizationSpecificationError) as exc:
        raise StatePersistenceError(f"PostgreSQL at {where} refused the login: {exc}") from exc
    except asyncpg.InvalidCatalogNameError as exc:
        raise StatePersistenceError(f"PostgreSQL at {where}: {exc}") from exc
    except TimeoutError as exc:
        raise StatePersistenceError(
            f"cannot connect to PostgreSQL at {where}: no answer within "
            f"{connect_timeout or options.connect_timeout_s:g} s"
        ) from exc
    except (*RETRYABLE, asyncpg.PostgresError) as exc:
        raise StatePersistenceError(
            f"cannot connect to PostgreSQL at {where}: {type(exc).__name__}: {exc}"
        ) from exc
    logger.info(
        "connected to %s (schema %s, pool %d-%d)", where, schema, options.min_size, options.max_size
    )
    return pool


async def with_retry(operation: Callable[[], Awaitable[T]], *, what: str, retry_for_s: float) -> T:
    """Run ``operation``; on connection loss, back off and run it again (it must be safe to
    repeat: every store operation is, by its guard or its idempotency). Other database
    errors become ``StatePersistenceError`` with the driver error as ``__cause__``."""
    deadline = time.monotonic() + retry_for_s
    delay = 0.05
    while True:
        try:
            return await operation()
        except RETRYABLE as exc:
            if time.monotonic() + delay > deadline:
                raise StatePersistenceError(
                    f"{what} failed: the database stayed unreachable for {retry_for_s:.0f} s "
                    f"({type(exc).__name__}: {exc})"
                ) from exc
            logger.warning("%s: %s; retrying in %.2f s", what, type(exc).__name__, delay)
            await asyncio.sleep(delay * (0.5 + random.random()))
            delay = min(delay * 2, 2.0)
        except asyncpg.DataError as exc:
            unstorable = unstorable_text(exc)
            if unstorable is None:
                raise StatePersistenceError(f"{what} failed: {type(exc).__name__}: {exc}") from exc
            # The engine and the API check text before it gets here; this is the net under
            # code that calls the store directly. The driver's text is not passed on.
            raise InvalidInputError(f"{what} failed: a text value {unstorable}") from exc
        except asyncpg.InsufficientPrivilegeError as exc:
            raise StatePersistenceError(
                f"{what} failed: the database user lacks a permission: {exc}"
            ) from exc
        except asyncpg.PostgresError as exc:
            raise StatePersistenceError(f"{what} failed: {type(exc).__name__}: {exc}") from exc


def unstorable_text(exc: asyncpg.DataError) -> str | None:
    """What is wrong when PostgreSQL (or asyncpg, encoding a parameter) refused text
    (``None``: something else): a NUL character, or a lone surrogate."""
    if isinstance(
        exc, asyncpg.CharacterNotInRepertoireError | asyncpg.UntranslatableCharacterError
    ):
        return "contains the NUL character (\\u0000), which PostgreSQL cannot store"
    if isinstance(exc.__cause__, UnicodeEncodeError):
        return "contains a lone surrogate, which is not valid Unicode text"
    return None
