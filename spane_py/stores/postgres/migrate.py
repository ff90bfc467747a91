"""Schema migrations of the PostgreSQL store: applied by ``spane db upgrade`` or from code,
checked by the store when it starts.

    await upgrade("postgresql://postgres@127.0.0.1/app", schema="spane")  # -> "0002"
    await check_schema(conn, "spane")  # SchemaVersionError unless the schema is at head

The revisions are Alembic's, kept in the repository's top-level ``migrations/`` folder and
installed as the ``spane_py.migrations`` package (``env.py`` there says how a run goes:
one transaction under an advisory lock keyed on the schema, so concurrent upgrades from
several processes are safe — one migrates, the others wait and find the schema at head).

Only migrating imports Alembic and SQLAlchemy: the check reads ``alembic_version`` with
asyncpg and compares it with ``revisions.REVISIONS``, so a worker never loads them.

Every object lives in one PostgreSQL schema (``spane`` unless told otherwise), reached
through ``search_path``; ``alembic_version`` lives there too.

Database URLs are libpq/asyncpg URLs: ``postgresql://`` or ``postgres://``, a unix socket
as ``?host=/dir``, several hosts as ``h1:5432,h2:5432``. SQLAlchemy spellings
(``postgresql+asyncpg://``) are accepted. ``connect_timeout`` (seconds, as libpq) is
honoured; asyncpg itself passes unknown query parameters to the server as settings.
"""

from __future__ import annotations

import importlib.util
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import asyncpg

from spane_py.errors import (
    ConfigurationError,
    SchemaVersionError,
    SpaneError,
    StatePersistenceError,
)
from spane_py.stores.postgres import revisions

if TYPE_CHECKING:  # imported where used: checking a schema needs neither
    from alembic.config import Config
    from sqlalchemy.engine import Connection
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import AsyncEngine

logger = logging.getLogger("spane_py.db.migrate")  # SPANE_DB_LOG shows it

DEFAULT_SCHEMA = "spane"
# The advisory lock of a migration run is (hashtext(LOCK_NAMESPACE), hashtext(schema)).
LOCK_NAMESPACE = "spane_py.migrate"
DEFAULT_CONNECT_TIMEOUT_S = 10.0

_SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_SCHEMES = ("postgresql", "postgres")


# Names and URLs ----------------------------------------------------------------------


def validate_schema_name(schema: str) -> str:
    """Return ``schema`` if it is a safe PostgreSQL schema name, else raise ConfigurationError."""
    if not isinstance(schema, str) or not _SCHEMA_NAME.match(schema):
        raise ConfigurationError(
            f"invalid schema name {schema!r}: use 1 to 63 lowercase letters, digits and "
            "underscores, not starting with a digit"
        )
    if schema.startswith("pg_") or schema == "information_schema":
        raise ConfigurationError(f"invalid schema name {schema!r}: reserved by PostgreSQL")
    return schema


def redact(dsn: str) -> str:
    """``dsn`` with its password (in the user part or in ``?password=``) hidden."""
    try:
        parts = urlsplit(dsn)
    except ValueError:
        return re.sub(r"(//[^:/@]*:)[^@/]*@", r"\1***@", dsn)
    netloc = parts.netloc
    if "@" in netloc:
        user, _, hosts = netloc.rpartition("@")
        if ":" in user:
            user = user.split(":", 1)[0] + ":***"
        netloc = f"{user}@{hosts}"
    query = [(k, "***" if k == "password" else v) for k, v in parse_qsl(parts.query, True)]
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(query, safe="/:*")))


def parse_dsn(dsn: str) -> tuple[str, float | None]:
    """Check a database URL; return it as asyncpg takes it, and its ``connect_timeout``.

    ``postgresql+asyncpg://`` (any ``+driver``) becomes ``postgresql://``; ``connect_timeout``
    is taken out of the query (asyncpg would send it to the server as a setting).
    Raises ConfigurationError naming what is wrong.
    """
    if not isinstance(dsn, str) or not dsn.strip():
        raise ConfigurationError("the database URL is empty")
    dsn = dsn.strip()
    scheme, sep, rest = dsn.partition("://")
    base = scheme.split("+", 1)[0].lower()
    if not sep or base not in _SCHEMES:
        raise ConfigurationError(
            f"invalid database URL {redact(dsn)!r}: it must start with postgresql:// "
            "(or postgres://)"
        )
    try:
        parts = urlsplit(f"postgresql://{rest}")
    except ValueError as exc:
        raise ConfigurationError(f"invalid database URL {redact(dsn)!r}: {exc}") from exc
    timeout: float | None = None
    query = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key == "connect_timeout":
            try:
                timeout = float(value)
            except ValueError:
                timeout = -1.0
            if not timeout > 0:
                raise ConfigurationError(
                    f"invalid database URL {redact(dsn)!r}: connect_timeout must be a "
                    f"positive number of seconds, got {value!r}"
                )
        else:
            query.append((key, value))
    for host in parts.netloc.rpartition("@")[2].split(","):
        _, colon, port = host.rpartition(":") if not host.endswith("]") else ("", "", "")
        if colon and port and not (port.isdigit() and 0 < int(port) < 65536):
            raise ConfigurationError(f"invalid database URL {redact(dsn)!r}: bad port {port!r}")
    if timeout is not None:  # otherwise the query is passed on exactly as given
        parts = parts._replace(query=urlencode(query, safe="/:"))
    return urlunsplit(parts), timeout


async def connect(dsn: str, *, timeout: float | None = None) -> asyncpg.Connection:
    """Open one asyncpg connection; a bad URL raises ConfigurationError, a server that
    cannot be reached (or refuses us) StatePersistenceError, both naming the cause."""
    url, dsn_timeout = parse_dsn(dsn)
    timeout = timeout or dsn_timeout or DEFAULT_CONNECT_TIMEOUT_S
    where = redact(dsn)
    try:
        return await asyncpg.connect(url, timeout=timeout)
    except (asyncpg.ClientConfigurationError, ValueError, asyncpg.UndefinedObjectError) as exc:
        # UndefinedObjectError: a query parameter the server has no setting for.
        raise ConfigurationError(f"invalid database URL {where!r}: {exc}") from exc
    except TimeoutError as exc:
        raise StatePersistenceError(
            f"cannot connect to PostgreSQL at {where}: no answer within {timeout:g} s"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StatePersistenceError(
            f"cannot connect to PostgreSQL at {where}: {_describe(exc)}"
        ) from exc


def sqlalchemy_engine(dsn: str) -> AsyncEngine:
    """A SQLAlchemy engine (``postgresql+asyncpg``, no pool) whose connections come from
    ``connect(dsn)``: same URL rules, same errors."""
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import NullPool

    parse_dsn(dsn)  # fail now on a bad URL, not at the first connection
    return create_async_engine(
        "postgresql+asyncpg://", async_creator=lambda: connect(dsn), poolclass=NullPool
    )


def _driver_error(exc: DBAPIError) -> BaseException:
    """The asyncpg error under SQLAlchemy's wrappers (its DBAPI adapter keeps it as cause)."""
    error: BaseException = exc.orig if exc.orig is not None else exc
    while error.__cause__ is not None and not isinstance(
        error, asyncpg.PostgresError | asyncpg.InterfaceError | OSError
    ):
        error = error.__cause__
    return error


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


# The script directory ----------------------------------------------------------------


def migrations_path() -> Path:
    """The folder of ``env.py`` and ``versions/``: the installed ``spane_py.migrations``
    package, else (a source tree not installed again since) ``migrations/`` beside
    ``spane_py/``."""
    spec = importlib.util.find_spec("spane_py.migrations")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            if (Path(location) / "env.py").is_file():
                return Path(location)
    source = Path(__file__).resolve().parents[3] / "migrations"
    if (source / "env.py").is_file():
        return source
    raise ConfigurationError(
        "spane_py's migrations are missing from this installation (no spane_py.migrations "
        "package): reinstall spane-py"
    )


def _config(schema: str) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_path()).replace("%", "%%"))
    config.set_main_option("path_separator", "os")
    config.attributes["schema"] = schema
    return config


def script_revisions() -> tuple[str, ...]:
    """The revisions of ``migrations_path()`` as Alembic reads them, oldest first (one
    chain); ``revisions.REVISIONS`` must be the same (a test checks it)."""
    from alembic.script import ScriptDirectory

    script = ScriptDirectory.from_config(_config(DEFAULT_SCHEMA))
    return tuple(reversed([r.revision for r in script.walk_revisions()]))


def head_revision() -> str:
    """The revision this spane_py's code needs (the head of its migrations)."""
    return revisions.REVISIONS[-1]


def _known(revision: str) -> bool:
    return revision in revisions.REVISIONS


# Running the migrations ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MigrationResult:
    """What a migration run found and left: revisions before and after (None: none)."""

    schema: str
    before: str | None
    after: str | None

    @property
    def changed(self) -> bool:
        return self.before != self.after


async def apply_migrations(
    dsn: str, *, schema: str = DEFAULT_SCHEMA, revision: str = "head", downgrade: bool = False
) -> MigrationResult:
    """Upgrade (or downgrade) ``schema`` to ``revision`` and say from where to where."""
    from alembic import util  # first, the package itself: a missing extra says "alembic"
    from sqlalchemy.exc import DBAPIError

    schema = validate_schema_name(schema)
    engine = sqlalchemy_engine(dsn)
    config = _config(schema)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run_alembic, config, revision, downgrade)
    except SpaneError:
        raise
    except util.CommandError as exc:
        before = config.attributes.get("revision_before")
        if before is not None and not _known(before):
            raise SchemaVersionError(_newer_message(schema, before)) from exc
        raise ConfigurationError(f"cannot migrate schema {schema!r}: {exc}") from exc
    except DBAPIError as exc:
        raise StatePersistenceError(
            f"migrating schema {schema!r} at {redact(dsn)} failed: {_describe(_driver_error(exc))}"
        ) from exc
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        raise StatePersistenceError(
            f"migrating schema {schema!r} at {redact(dsn)} failed: {_describe(exc)}"
        ) from exc
    finally:
        config.attributes.pop("connection", None)
        await engine.dispose()
    result = MigrationResult(
        schema, config.attributes.get("revision_before"), config.attributes.get("revision_after")
    )
    if result.changed:
        logger.info("schema %r migrated from %s to %s", schema, result.before, result.after)
    else:
        logger.info("schema %r already at %s", schema, result.after)
    return result


def _run_alembic(connection: Connection, config: Config, revision: str, downgrade: bool) -> None:
    from alembic import command

    config.attributes["connection"] = connection
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)


async def upgrade(dsn: str, *, schema: str = DEFAULT_SCHEMA, revision: str = "head") -> str:
    """Apply the migrations to ``schema`` (created if missing) up to ``revision``; return the
    revision now in place. Safe to call from several processes at once."""
    result = await apply_migrations(dsn, schema=schema, revision=revision)
    if result.after is None:  # pragma: no cover - an upgrade always leaves a revision
        raise StatePersistenceError(f"schema {schema!r} has no revision after its upgrade")
    return result.after


async def downgrade(
    dsn: str, *, schema: str = DEFAULT_SCHEMA, revision: str = "base"
) -> str | None:
    """Undo migrations of ``schema`` down to ``revision`` (``base``: drop every table, keep
    the schema and an empty ``alembic_version``); return the revision now in place."""
    result = await apply_migrations(dsn, schema=schema, revision=revision, downgrade=True)
    return result.after


def upgrade_sql(
    *, schema: str = DEFAULT_SCHEMA, revision: str = "head", from_revision: str | None = None
) -> str:
    """The SQL script of an upgrade of ``schema`` from ``from_revision`` (None: an empty
    schema) to ``revision``, without a database (Alembic's offline mode): for a DBA to
    review or run with ``psql``. It takes the same lock and creates the schema as ``upgrade``."""
    from alembic import command
    from alembic.util import CommandError

    schema = validate_schema_name(schema)
    config = _config(schema)
    buffer = io.StringIO()
    config.output_buffer = buffer
    target = f"{from_revision}:{revision}" if from_revision else revision
    try:
        command.upgrade(config, target, sql=True)
    except CommandError as exc:
        raise ConfigurationError(f"cannot write the upgrade of schema {schema!r}: {exc}") from exc
    return buffer.getvalue()


# Checking a database ------------------------------------------------------------------


async def current_revision(conn: asyncpg.Connection, schema: str) -> str | None:
    """The revision of ``schema`` in the database; None when the schema, its
    ``alembic_version`` table or its row is missing."""
    schema = validate_schema_name(schema)
    try:
        table = await conn.fetchval(
            "SELECT to_regclass(format('%I.alembic_version', $1::text))::text", schema
        )
        if table is None:
            return None
        rows = await conn.fetch(f'SELECT version_num FROM "{schema}".alembic_version')
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError) as exc:
        raise StatePersistenceError(
            f"cannot read the revision of schema {schema!r}: {_describe(exc)}"
        ) from exc
    if not rows:
        return None
    return ",".join(sorted(str(row[0]) for row in rows))


def _command(schema: str) -> str:
    suffix = "" if schema == DEFAULT_SCHEMA else f" --schema {schema}"
    return f"spane db upgrade{suffix}"


def _newer_message(schema: str, revision: str) -> str:
    return (
        f"database schema {schema!r} is at revision {revision}, newer than this spane_py "
        f"({head_revision()}): upgrade spane_py"
    )


def mismatch(schema: str, revision: str | None) -> str | None:
    """Why a database at ``revision`` cannot be used by this code (None: it can)."""
    head = head_revision()
    if revision == head:
        return None
    if revision is None:
        return (
            f"the database has no spane_py schema yet (schema {schema!r} has no revision; "
            f"this spane_py needs {head}): run `{_command(schema)}`"
        )
    if _known(revision):
        return (
            f"database schema {schema!r} is at revision {revision}, this spane_py needs "
            f"{head}: run `{_command(schema)}`"
        )
    return _newer_message(schema, revision)


async def check_schema(conn: asyncpg.Connection, schema: str) -> None:
    """Raise SchemaVersionError unless ``schema`` is at this code's revision; the message
    names the schema, both revisions and the command that fixes it."""
    problem = mismatch(schema, await current_revision(conn, schema))
    if problem is not None:
        raise SchemaVersionError(problem)


__all__ = [
    "DEFAULT_SCHEMA",
    "LOCK_NAMESPACE",
    "MigrationResult",
    "apply_migrations",
    "check_schema",
    "connect",
    "current_revision",
    "downgrade",
    "head_revision",
    "migrations_path",
    "mismatch",
    "parse_dsn",
    "redact",
    "script_revisions",
    "sqlalchemy_engine",
    "upgrade",
    "upgrade_sql",
    "validate_schema_name",
]
