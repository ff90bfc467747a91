"""``spane db``: the PostgreSQL schema — apply the migrations, show the revisions — and
pruning old executions by hand (``spane db prune``, docs/retention.md).

``--database-url``, else ``DATABASE_URL``, else the embedded PostgreSQL in ``.spane/pg``;
the schema is ``--schema``, else ``SPANE_DB_SCHEMA``, else ``spane``. A bad URL or schema
exits 2, an unreachable or failing database 1, a missing ``postgres`` extra 2.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

import typer

from spane_py._cli_support import (
    NOT_COMPLETED,
    SpaneCommand,
    SpaneGroup,
    fail,
    load_settings,
    setup_logging,
    stderr,
)
from spane_py.errors import ConfigurationError, SpaneError
from spane_py.settings import SpaneSettings

db_app = typer.Typer(
    name="db",
    help="The PostgreSQL schema: apply migrations, show revisions, prune old executions.",
    no_args_is_help=True,
    cls=SpaneGroup,
)

SchemaOption = Annotated[
    str | None,
    typer.Option("--schema", help="PostgreSQL schema (default: SPANE_DB_SCHEMA, else spane)."),
]
DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        help="PostgreSQL URL (default: DATABASE_URL, else the embedded server in .spane/pg).",
    ),
]
EMBEDDED_PG_DIR = ".spane/pg"


async def _database_url(given: str | None, settings: SpaneSettings) -> tuple[str, Any]:
    """The URL to use, and the embedded server started for it (None: a real server)."""
    if given is not None:  # even empty: an explicit URL is never replaced by the embedded one
        return given, None
    if settings.database_url:
        return settings.database_url, None
    from spane_py.embedded import EmbeddedPostgres

    server = EmbeddedPostgres(EMBEDDED_PG_DIR)
    stderr().print(f"no DATABASE_URL: using the embedded PostgreSQL in {EMBEDDED_PG_DIR}")
    return await server.astart(), server


def _run_db(main: Callable[[], Coroutine[Any, Any, None]]) -> None:
    """Run a ``spane db`` command: a bad URL or schema exits 2, an unreachable or failing
    database 1, a missing ``postgres`` extra 2."""
    try:
        asyncio.run(main())
    except ImportError as exc:
        missing = exc.name or str(exc)
        fail(
            f"`spane db` needs the postgres extra ({missing} is not installed): "
            "pip install 'spane-py[postgres]'"
        )
    except ConfigurationError as exc:
        fail(str(exc))
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)


@db_app.command("upgrade", cls=SpaneCommand)
def db_upgrade(
    schema: SchemaOption = None,
    database_url: DatabaseUrlOption = None,
    sql: Annotated[
        bool, typer.Option("--sql", help="Print the SQL of an upgrade from scratch instead.")
    ] = False,
) -> None:
    """Apply the migrations: create the schema if needed, bring it to this spane_py's head.

    Several processes may run it at once: one migrates, the others wait and find it done."""
    settings = load_settings()
    setup_logging("WARNING")
    target = schema or settings.db_schema

    async def main() -> None:
        from spane_py.stores.postgres import migrate

        if sql:
            sys.stdout.write(migrate.upgrade_sql(schema=target))
            return
        migrate.validate_schema_name(target)
        url, server = await _database_url(database_url, settings)
        try:
            result = await migrate.apply_migrations(url, schema=target)
        finally:
            if server is not None:
                server.stop()
        where = f"schema {target!r} at {migrate.redact(url)}"
        if result.changed:
            before = result.before or "nothing"
            typer.echo(f"{where}: upgraded from {before} to {result.after} (head)")
        else:
            typer.echo(f"{where}: already at {result.after} (head)")

    _run_db(main)


@db_app.command("current", cls=SpaneCommand)
def db_current(schema: SchemaOption = None, database_url: DatabaseUrlOption = None) -> None:
    """Print the database's schema revision and the revision this spane_py needs.

    Exits 1 when they differ (no schema yet, or another revision), naming the command
    that brings the schema to this code's revision."""
    settings = load_settings()
    setup_logging("WARNING")
    target = schema or settings.db_schema

    async def main() -> None:
        from spane_py.stores.postgres import migrate

        migrate.validate_schema_name(target)
        head = migrate.head_revision()
        url, server = await _database_url(database_url, settings)
        try:
            conn = await migrate.connect(url)
            try:
                current = await migrate.current_revision(conn, target)
            finally:
                await conn.close()
        finally:
            if server is not None:
                server.stop()
        typer.echo(f"database: {current or 'none'} (schema {target!r} at {migrate.redact(url)})")
        typer.echo(f"code:     {head} (head)")
        problem = migrate.mismatch(target, current)
        if problem is not None:
            fail(problem, NOT_COMPLETED)
        typer.echo("up to date")

    _run_db(main)


@db_app.command("prune", cls=SpaneCommand)
def db_prune(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than", help="Delete what finished longer ago than this: 30d, 12h, 90m."
        ),
    ],
    status: Annotated[
        str,
        typer.Option("--status", help="Finished statuses, comma-separated."),
    ] = "completed,failed,cancelled",
    workflow: Annotated[
        str | None, typer.Option("--workflow", help="Only this workflow's executions.")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would go; delete nothing.")
    ] = False,
    schema: SchemaOption = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete finished executions (and their nodes, logs, spans, tokens, dead letters,
    artifacts and events) that finished before --older-than ago, in batches of 500.

    Whatever the retention settings say; never one that is queued, running or paused,
    nor one an unfinished parent or child execution needs. With SPANE_ARCHIVE_DIR set,
    each is written there (JSON lines) before it is deleted."""
    from datetime import UTC, datetime

    from spane_py.retention import parse_duration
    from spane_py.state import ExecutionStatus

    settings = load_settings()
    setup_logging("WARNING")
    target = schema or settings.db_schema
    try:
        age = parse_duration(older_than)
        statuses = [ExecutionStatus(s.strip()) for s in status.split(",") if s.strip()]
    except ValueError as exc:
        fail(f"--older-than / --status: {exc}")
    if not statuses or not all(s.is_terminal for s in statuses):
        fail("--status takes finished statuses: completed, failed, cancelled")

    async def main() -> None:
        from spane_py.archive import Archive
        from spane_py.engine.pruning import prune_older_than
        from spane_py.stores.postgres import migrate
        from spane_py.stores.postgres.store import PostgresExecutionStore

        migrate.validate_schema_name(target)
        url, server = await _database_url(database_url, settings)
        store = PostgresExecutionStore(url, schema=target, min_pool_size=1, max_pool_size=2)
        try:
            await store.start()
            result = await prune_older_than(
                store,
                age,
                datetime.now(UTC),
                statuses=statuses,
                workflow_id=workflow,
                dry_run=dry_run,
                archive=Archive(settings.archive_dir) if settings.archive_dir else None,
            )
        finally:
            await store.close()
            if server is not None:
                server.stop()
        verb = "would delete" if dry_run else "deleted"
        dropped = "would drop" if dry_run else "dropped"
        typer.echo(
            f"{verb} {result.executions} execution(s), {result.rows} row(s) in all "
            f"(finished before {age} ago; {', '.join(s.value for s in statuses)}); "
            f"{dropped} {result.partitions} partition(s) of logs and spans"
        )

    _run_db(main)


def register(app: typer.Typer) -> None:
    """Add ``spane db`` to the ``spane`` command."""
    app.add_typer(db_app)
