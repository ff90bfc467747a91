"""``spane events`` and ``spane artifacts``: the event history and an execution's artifacts,
from the store.

    spane events [--execution ID] [--type T]... [--since TIME] [--until TIME] [--limit N]
                 [--json]
    spane artifacts list EXECUTION_ID [--json]
    spane artifacts get EXECUTION_ID NAME [-o FILE]

They read the store the settings name, as ``cli_inspect``'s commands do (``DATABASE_URL``,
``SPANE_DB_SCHEMA``). The event history holds events only where workers record it
(``SPANE_EVENT_HISTORY=1``, docs/observability.md). ``artifacts get`` writes the bytes to
FILE, or to standard output when none is given.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from spane_py._cli_support import SpaneCommand, SpaneGroup, StoreOption, fail, print_json
from spane_py._cli_tables import Column, iso, print_fitted
from spane_py.cli_inspect import (
    ExecutionIdArgument,
    JsonOption,
    resolve_execution_id,
    when,
    with_store_engine,
)
from spane_py.engine.engine import WorkflowEngine
from spane_py.records import EventRecord
from spane_py.state import Artifact, ArtifactInfo

artifacts_app = typer.Typer(
    name="artifacts", help="An execution's artifacts.", no_args_is_help=True, cls=SpaneGroup
)


def _time(text: str | None, option: str) -> datetime | None:
    """An ISO 8601 time (UTC when it names no zone)."""
    if text is None:
        return None
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        fail(f"{option} {text!r} is not a time: give ISO 8601, e.g. 2026-12-05T10:00:00Z")
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def events(
    execution: Annotated[
        str | None, typer.Option("--execution", help="Only this execution's (id or prefix).")
    ] = None,
    types: Annotated[
        list[str] | None, typer.Option("--type", help="Only events of this type (repeatable).")
    ] = None,
    since: Annotated[str | None, typer.Option(help="From this time on (ISO 8601).")] = None,
    until: Annotated[str | None, typer.Option(help="Before this time (ISO 8601).")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """The recorded events, oldest first."""
    start, end = _time(since, "--since"), _time(until, "--until")

    async def action(engine: WorkflowEngine) -> list[EventRecord]:
        execution_id = None if execution is None else await resolve_execution_id(engine, execution)
        return await engine.get_events(
            execution_id, types=types or None, since=start, until=end, limit=limit
        )

    found = with_store_engine(store, action)
    if as_json:
        print_json(
            [
                {
                    "type": e.type,
                    "at": iso(e.at),
                    "execution_id": e.execution_id,
                    "workflow_id": e.workflow_id,
                    "node_id": e.node_id,
                    "fields": dict(e.fields),
                }
                for e in found
            ]
        )
        return
    if not found:
        typer.echo("no event recorded (workers record them with SPANE_EVENT_HISTORY=1)")
        return
    print_fitted(
        [
            Column("at", [when(e.at) for e in found]),
            Column("type", [e.type for e in found]),
            Column("execution", [e.execution_id or "-" for e in found], minimum=8),
            Column("node", [e.node_id or "-" for e in found], minimum=6),
            Column(
                "fields",
                [", ".join(f"{k}={v}" for k, v in e.fields.items()) for e in found],
                minimum=10,
            ),
        ],
        [[4, 3, 2]],
    )


@artifacts_app.command("list", cls=SpaneCommand)
def artifacts_list(
    execution_id: ExecutionIdArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """The execution's artifacts: name, node, content type, size, when put."""

    async def action(engine: WorkflowEngine) -> list[ArtifactInfo]:
        return await engine.list_artifacts(await resolve_execution_id(engine, execution_id))

    found = with_store_engine(store, action)
    if as_json:
        print_json([a.model_dump(mode="json") for a in found])
        return
    if not found:
        typer.echo("no artifact")
        return
    print_fitted(
        [
            Column("name", [a.name for a in found], minimum=8),
            Column("node", [a.node_id or "-" for a in found], minimum=6),
            Column("content type", [a.content_type for a in found], minimum=10),
            Column("bytes", [str(a.size) for a in found]),
            Column("put", [when(a.created_at) for a in found]),
        ],
        [[0, 2, 1]],
    )


@artifacts_app.command("get", cls=SpaneCommand)
def artifacts_get(
    execution_id: ExecutionIdArgument,
    name: Annotated[str, typer.Argument(metavar="NAME")],
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file (default: stdout).")
    ] = None,
    store: StoreOption = None,
) -> None:
    """The artifact's bytes, as they were put."""

    async def action(engine: WorkflowEngine) -> Artifact:
        return await engine.get_artifact(await resolve_execution_id(engine, execution_id), name)

    found = with_store_engine(store, action)
    if output is None:
        sys.stdout.buffer.write(found.data)
        sys.stdout.buffer.flush()
    else:
        output.write_bytes(found.data)
        typer.echo(f"wrote {found.size} bytes to {output}", err=True)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command."""
    app.command("events", cls=SpaneCommand)(events)
    app.add_typer(artifacts_app)
