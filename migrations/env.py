"""Alembic environment of spane_py: asyncpg through SQLAlchemy, one PostgreSQL schema.

A run is ONE transaction:

1. ``pg_advisory_xact_lock`` keyed on the schema's name: runs started at the same moment
   (several processes calling ``spane db upgrade``) queue here. The lock goes with the
   commit, so the next run in line finds the schema at head and does nothing.
2. The schema is created if it is missing, and ``SET LOCAL search_path`` points at it: the
   tables (unqualified, in ``tables.py`` and in the revisions) land there, and
   ``alembic_version`` lives there too (``version_table_schema``).
3. The revisions run. PostgreSQL's DDL is transactional: an upgrade applies whole or not at all.

Called from code (``spane_py.stores.postgres.migrate``), the connection comes in
``config.attributes["connection"]`` and the schema in ``config.attributes["schema"]``; the
revisions found before and after are left in ``config.attributes`` for the caller. Run by
the ``alembic`` command, the URL is ``-x url=...`` or ``$DATABASE_URL`` and the schema
``-x schema=...``, ``$SPANE_DB_SCHEMA`` or ``spane``; ``--sql`` prints the SQL instead.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from alembic import context
from sqlalchemy import text
from sqlalchemy.engine import Connection

from spane_py.stores.postgres import migrate
from spane_py.stores.postgres.tables import is_partition, metadata

config = context.config


def _schema() -> str:
    schema = (
        config.attributes.get("schema")
        or context.get_x_argument(as_dictionary=True).get("schema")
        or os.environ.get("SPANE_DB_SCHEMA")
        or migrate.DEFAULT_SCHEMA
    )
    return migrate.validate_schema_name(schema)


def _include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    # alembic_version is in the schema too, and it is not one of ours (autogenerate); nor
    # are the partitions of logs and spans, created at run time.
    if type_ != "table" or name is None:
        return True
    return name != "alembic_version" and not is_partition(name)


def _configure(schema: str, **kwargs: Any) -> None:
    context.configure(
        target_metadata=metadata,
        include_name=_include_name,
        version_table_schema=schema,
        transactional_ddl=True,
        transaction_per_migration=False,
        compare_server_default=True,
        **kwargs,
    )


def run_migrations_online(connection: Connection, schema: str) -> None:
    _configure(schema, connection=connection)
    with context.begin_transaction():
        connection.execute(
            text("SELECT pg_advisory_xact_lock(hashtext(:namespace), hashtext(:schema))"),
            {"namespace": migrate.LOCK_NAMESPACE, "schema": schema},
        )
        # Checked first: CREATE SCHEMA needs the CREATE right on the database even when the
        # schema exists, and a role may own its schema without holding that right.
        exists = connection.execute(
            text("SELECT 1 FROM pg_namespace WHERE nspname = :schema"), {"schema": schema}
        ).scalar()
        if not exists:
            connection.execute(text(f'CREATE SCHEMA "{schema}"'))
        connection.execute(text(f'SET LOCAL search_path TO "{schema}"'))
        migration = context.get_context()
        config.attributes["revision_before"] = migration.get_current_revision()
        context.run_migrations()
        config.attributes["revision_after"] = migration.get_current_revision()


def run_migrations_offline(schema: str) -> None:
    _configure(schema, dialect_name="postgresql", literal_binds=True)
    with context.begin_transaction():
        context.execute(
            f"SELECT pg_advisory_xact_lock(hashtext('{migrate.LOCK_NAMESPACE}'), "
            f"hashtext('{schema}'))"
        )
        context.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        context.execute(f'SET LOCAL search_path TO "{schema}"')
        context.run_migrations()


async def _run_from_command(schema: str) -> None:
    url = context.get_x_argument(as_dictionary=True).get("url") or os.environ.get("DATABASE_URL")
    if not url:
        raise SystemExit("alembic: set DATABASE_URL or pass -x url=postgresql://...")
    logging.basicConfig(level=logging.INFO, format="%(levelname)-5.5s [%(name)s] %(message)s")
    engine = migrate.sqlalchemy_engine(url)
    try:
        async with engine.connect() as connection:
            await connection.run_sync(run_migrations_online, schema)
    finally:
        await engine.dispose()


def main() -> None:
    schema = _schema()
    if context.is_offline_mode():
        run_migrations_offline(schema)
        return
    connection = config.attributes.get("connection")
    if connection is None:
        asyncio.run(_run_from_command(schema))
    else:
        run_migrations_online(connection, schema)


main()
