"""``spane workflows`` and ``spane schedules``: what is registered, and steering schedules.

    spane workflows list [--all] [--json]
    spane workflows show WORKFLOW_ID [--version N] [--json]
    spane workflows versions WORKFLOW_ID [--json]
    spane schedules list [--workflow W] [--json]
    spane schedules pause|resume SCHEDULE_ID [--json]

They read the store the settings name, as ``cli_inspect``'s commands do (``DATABASE_URL``,
``SPANE_DB_SCHEMA``).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape

from spane_py._cli_support import (
    NOT_COMPLETED,
    SpaneCommand,
    SpaneGroup,
    Store,
    StoreOption,
    fail,
    print_json,
)
from spane_py._cli_tables import Column, iso, print_fitted, styled
from spane_py.cli_inspect import JsonOption, when, with_store_engine
from spane_py.definitions.graph import compile_workflow
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import WorkflowNotFoundError
from spane_py.records import WorkflowVersionRecord
from spane_py.triggers.scheduler import ScheduleInfo

WorkflowIdArgument = Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]
workflows_app = typer.Typer(
    name="workflows", help="Registered workflows.", no_args_is_help=True, cls=SpaneGroup
)
schedules_app = typer.Typer(
    name="schedules", help="Schedule triggers.", no_args_is_help=True, cls=SpaneGroup
)


def _summary(record: WorkflowVersionRecord) -> dict[str, Any]:
    d = record.definition
    return {
        "workflow_id": record.workflow_id,
        "version": record.version,
        "name": d.name,
        "description": d.description,
        "content_hash": record.content_hash,
        "created_at": record.created_at.isoformat(),
        "change_notes": record.change_notes,
        "active": record.active,
        "node_count": len(d.nodes),
    }


@workflows_app.command("list", cls=SpaneCommand)
def workflows_list(
    include_all: Annotated[bool, typer.Option("--all", help="Inactive workflows too.")] = False,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 100,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Registered workflows, the latest version of each, by id."""

    async def action(engine: WorkflowEngine) -> list[WorkflowVersionRecord]:
        return await engine.list_workflows(active_only=not include_all, limit=limit)

    records = with_store_engine(store, action)
    if as_json:
        print_json([_summary(r) for r in records])
        return
    if not records:
        typer.echo("no workflow is registered")
        return
    columns = [
        Column("workflow", [r.workflow_id for r in records], minimum=8),
        Column("version", [str(r.version) for r in records]),
        Column("name", [r.definition.name for r in records], minimum=8),
        Column("nodes", [str(len(r.definition.nodes)) for r in records]),
        Column("registered", [when(r.created_at) for r in records], minimum=10),
    ]
    print_fitted(columns, [[2], [0, 4]])


@workflows_app.command("show", cls=SpaneCommand)
def workflows_show(
    workflow_id: WorkflowIdArgument,
    version: Annotated[
        int | None, typer.Option(min=1, help="This version (default: the latest).")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """A workflow's definition: its nodes, their types and what each runs after."""

    async def action(engine: WorkflowEngine) -> WorkflowVersionRecord:
        await engine.store.start()
        record = await engine.store.get_workflow(workflow_id, version)
        if record is None:
            what = f"version {version} of workflow" if version is not None else "workflow"
            raise WorkflowNotFoundError(
                f"{what} {workflow_id!r} is not registered", workflow_id=workflow_id
            )
        return record

    record = with_store_engine(store, action)
    definition = record.definition
    if as_json:
        print_json({**_summary(record), "definition": definition.to_spane_json()})
        return
    parents = compile_workflow(definition).parents
    nodes = definition.nodes
    columns = [
        Column("node", [n.id for n in nodes], minimum=8),
        Column("type", [n.type for n in nodes], minimum=8),
        Column("after", [", ".join(parents.get(n.id, ())) or "-" for n in nodes], minimum=8),
        Column("queue", [n.queue or "-" for n in nodes], minimum=8),
    ]
    named = f" ({definition.name})" if definition.name != record.workflow_id else ""
    console = Console(highlight=False)
    console.print(
        f"[bold]{record.workflow_id} v{record.version}[/]{escape(named)}: {len(nodes)} nodes, "
        f"registered {when(record.created_at)}, hash {record.content_hash[:12]}"
    )
    if definition.description:
        console.print(escape(definition.description))
    print_fitted(columns, [[2, 3], [0, 1]])


@workflows_app.command("versions", cls=SpaneCommand)
def workflows_versions(
    workflow_id: WorkflowIdArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """Every stored version of a workflow, oldest first."""

    async def action(engine: WorkflowEngine) -> list[WorkflowVersionRecord]:
        return await engine.list_workflow_versions(workflow_id)

    records = with_store_engine(store, action)
    if not records:
        fail(f"workflow {workflow_id!r} is not registered", NOT_COMPLETED)
    if as_json:
        print_json([_summary(r) for r in records])
        return
    columns = [
        Column("version", [str(r.version) for r in records]),
        Column("registered", [when(r.created_at) for r in records], minimum=10),
        Column("hash", [r.content_hash[:12] for r in records]),
        Column("nodes", [str(len(r.definition.nodes)) for r in records]),
        Column("active", ["yes" if r.active else "no" for r in records]),
        Column("notes", [r.change_notes or "-" for r in records], minimum=8),
    ]
    print_fitted(columns, [[5], [1]])


# Schedules ----------------------------------------------------------------------------

ScheduleIdArgument = Annotated[
    str, typer.Argument(metavar="SCHEDULE_ID", help="As `spane schedules list` shows it.")
]


@schedules_app.command("list", cls=SpaneCommand)
def schedules_list(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow's.")] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """The schedules of registered workflows, by id, with their next tick."""

    async def action(engine: WorkflowEngine) -> list[ScheduleInfo]:
        return await engine.list_schedules(workflow)

    found = with_store_engine(store, action)
    if as_json:
        print_json(
            [
                {
                    "schedule_id": s.schedule_id,
                    "workflow_id": s.workflow_id,
                    "cron": s.cron,
                    "timezone": s.timezone,
                    "missed": s.missed,
                    "paused": s.paused,
                    "last_tick": iso(s.last_tick),
                    "next_tick": iso(s.next_tick),
                    "created_at": s.created_at.isoformat(),
                }
                for s in found
            ]
        )
        return
    if not found:
        typer.echo("no schedule")
        return
    columns = [
        Column("schedule", [s.schedule_id for s in found], minimum=12),
        Column("cron", [s.cron for s in found]),
        Column("timezone", [s.timezone for s in found], minimum=8),
        Column("state", [styled("paused" if s.paused else "active") for s in found]),
        Column("next tick", [when(s.next_tick) for s in found], minimum=10),
    ]
    print_fitted(columns, [[2, 4], [0]])


def _set_schedule(schedule_id: str, paused: bool, as_json: bool, store: Store | None) -> None:
    async def action(engine: WorkflowEngine) -> bool:
        if paused:
            return await engine.pause_schedule(schedule_id)
        return await engine.resume_schedule(schedule_id)

    changed = with_store_engine(store, action)
    if as_json:
        print_json({"schedule_id": schedule_id, "paused": paused, "changed": changed})
    else:
        state = "paused" if paused else "resumed"
        typer.echo(f"schedule {schedule_id}: {state}" + ("" if changed else " already"))


@schedules_app.command("pause", cls=SpaneCommand)
def schedules_pause(
    schedule_id: ScheduleIdArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """Stop firing the schedule (registering its workflow again keeps it paused)."""
    _set_schedule(schedule_id, True, as_json, store)


@schedules_app.command("resume", cls=SpaneCommand)
def schedules_resume(
    schedule_id: ScheduleIdArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """Fire again from the next tick; ticks that passed while paused are not caught up."""
    _set_schedule(schedule_id, False, as_json, store)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command."""
    app.add_typer(workflows_app)
    app.add_typer(schedules_app)
