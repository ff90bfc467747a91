"""``spane executions pause|resume|cancel|retry|replay``, ``spane tokens``, ``spane workflows``
and ``spane schedules``: control executions, and read and steer what is registered.

    spane executions pause|resume|cancel|retry|replay [EXECUTION_ID...]
                     [--workflow W] [--status S] [--limit N] [--yes] [--json]
    spane tokens list [--execution ID] [--all] [--json]
    spane tokens resume TOKEN [--data JSON] [--json]
    spane tokens revoke TOKEN [--json]
    spane workflows list [--all] [--json]
    spane workflows show WORKFLOW_ID [--version N] [--json]
    spane workflows versions WORKFLOW_ID [--json]
    spane schedules list [--workflow W] [--json]
    spane schedules pause|resume SCHEDULE_ID [--json]

They use the store the settings name, as ``cli_inspect``'s commands do (``DATABASE_URL``,
``SPANE_DB_SCHEMA``), and the Redis of the workers (``REDIS_URL``, ``SPANE_KEY_PREFIX``)
where the action sends jobs or tells workers: the execution actions and ``tokens resume``.

The execution actions take ids (each may be a unique prefix, as ``executions show``), or a
filter, ``--workflow`` and/or ``--status``, that selects the newest ``--limit`` matching
executions; a filter that selects more than one needs ``--yes``. Each id is reported
changed, unchanged (paused already, ...) or error (refused, not found): exit code 1 when
any is an error. A prefix several ids share is a usage error (exit 2) and nothing is done.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Annotated, Any, Literal

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from spane_py._cli_support import (
    NOT_COMPLETED,
    SpaneCommand,
    SpaneGroup,
    Store,
    StoreOption,
    fail,
    load_settings,
    print_json,
    stderr,
)
from spane_py._cli_tables import Column, build_table, fit_widths, minimum_widths, print_table
from spane_py.cli_inspect import (
    CANDIDATES,
    JsonOption,
    _when,
    _with_engine,
    executions_app,
    resolve_execution_id,
)
from spane_py.definitions.graph import compile_workflow
from spane_py.engine.control import BulkResult
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import ExecutionNotFoundError, ResumeTokenError, WorkflowNotFoundError
from spane_py.records import ResumeTokenRecord, WorkflowVersionRecord
from spane_py.state import ExecutionStatus
from spane_py.triggers.scheduler import ScheduleInfo

Action = Literal["pause", "resume", "cancel", "retry", "replay"]

tokens_app = typer.Typer(
    name="tokens", help="Resume tokens of waiting nodes.", no_args_is_help=True, cls=SpaneGroup
)
workflows_app = typer.Typer(
    name="workflows", help="Registered workflows.", no_args_is_help=True, cls=SpaneGroup
)
schedules_app = typer.Typer(
    name="schedules", help="Schedule triggers.", no_args_is_help=True, cls=SpaneGroup
)

IdsArgument = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="EXECUTION_ID",
        help="Execution ids, or prefixes of them that no other has.",
        show_default=False,
    ),
]
WorkflowFilter = Annotated[
    str | None, typer.Option("--workflow", help="Select the executions of this workflow.")
]
StatusFilter = Annotated[
    ExecutionStatus | None,
    typer.Option("--status", case_sensitive=False, help="Select the executions in this status."),
]
LimitOption = Annotated[
    int, typer.Option(min=1, max=1000, help="Select at most this many, the newest first.")
]
YesOption = Annotated[
    bool, typer.Option("--yes", "-y", help="Act when the filter selects more than one.")
]

_STYLE = {
    "changed": "green",
    "unchanged": "dim",
    "error": "red",
    "active": "green",
    "paused": "yellow",
    "used": "dim",
    "revoked": "red",
    "expired": "yellow",
}
_DONE = {
    "pause": ("paused", "paused already"),
    "resume": ("resumed", "running already"),
    "cancel": ("cancelled", "cancelled already"),
    "retry": ("retried from its failures", ""),
    "replay": ("replayed", ""),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _styled(word: str) -> Text:
    return Text(word, style=_STYLE.get(word, ""))


def _need_redis() -> None:
    if not load_settings(None).redis_url:
        fail("this command sends jobs to the workers: set REDIS_URL (the one your workers use)")


def _print(columns: list[Column], stages: list[list[int]]) -> None:
    console = Console(highlight=False)
    widths = fit_widths(columns, console.width, stages) or minimum_widths(columns)
    print_table(console, build_table(columns, widths), widths)


# Executions ---------------------------------------------------------------------------


async def _resolve_all(
    engine: WorkflowEngine, given: Sequence[str]
) -> tuple[list[str], dict[str, str]]:
    """The whole ids ``given`` names, in order, once each; and the ones no execution has,
    with why. An ambiguous prefix exits (code 2) before anything is done."""
    ids: dict[str, None] = {}
    missing: dict[str, str] = {}
    for name in given:
        try:
            ids[await resolve_execution_id(engine, name)] = None
        except ExecutionNotFoundError as exc:
            missing[name] = exc.message
    return list(ids), missing


async def _select(
    engine: WorkflowEngine,
    action: Action,
    workflow: str | None,
    status: ExecutionStatus | None,
    limit: int,
    yes: bool,
) -> list[str]:
    await engine.store.start()
    page = await engine.store.list_executions(workflow_id=workflow, status=status, limit=limit)
    ids = [r.execution_id for r in page.items]
    more = f" (the newest {limit}; more match: raise --limit)" if page.next_cursor else ""
    if len(ids) > 1 and not yes:
        shown = "\n  ".join(ids[:CANDIDATES]) + ("\n  (and more)" if len(ids) > CANDIDATES else "")
        fail(
            f"the filter selects {len(ids)} executions{more}; "
            f"pass --yes to {action} them:\n  {shown}"
        )
    if more:
        stderr().print(f"note: {action} the newest {limit} matching executions only (--limit)")
    return ids


async def _apply(
    engine: WorkflowEngine, action: Action, ids: list[str], reason: str | None
) -> tuple[BulkResult, dict[str, str]]:
    """The action on each id (the engine's bulk methods where it has them); and, for a
    replay, the new execution of each id."""
    replays: dict[str, str] = {}
    if not ids:
        return BulkResult(), replays
    if action == "pause":
        return await engine.pause_executions(ids), replays
    if action == "resume":
        return await engine.resume_executions(ids), replays
    if action == "cancel" and reason is None:
        return await engine.cancel_executions(ids), replays

    async def one(execution_id: str) -> bool:
        if action == "retry":
            await engine.retry_execution(execution_id)
            return True
        if action == "replay":
            replays[execution_id] = await engine.replay_execution(execution_id)
            return True
        return await engine.cancel_execution(execution_id, reason)

    await engine.start()
    return await engine.control.bulk(one, ids), replays


def _control(
    action: Action,
    given: list[str] | None,
    workflow: str | None,
    status: ExecutionStatus | None,
    limit: int,
    yes: bool,
    as_json: bool,
    store: Store | None,
    reason: str | None = None,
) -> None:
    if given and (workflow is not None or status is not None):
        fail("give execution ids or --workflow/--status, not both")
    if not given and workflow is None and status is None:
        fail(f"say which executions to {action}: their ids, or --workflow and/or --status")
    _need_redis()

    async def main(engine: WorkflowEngine) -> tuple[list[str], BulkResult, dict[str, str]]:
        if given:
            ids, missing = await _resolve_all(engine, given)
        else:
            ids, missing = await _select(engine, action, workflow, status, limit, yes), {}
        result, replays = await _apply(engine, action, ids, reason)
        result.errors.update(missing)
        return [*ids, *missing], result, replays

    order, result, replays = _with_engine(store, main)
    if as_json:
        out: dict[str, Any] = {
            "action": action,
            "changed": [i for i in order if i in result.changed],
            "unchanged": [i for i in order if i in result.unchanged],
            "errors": {i: result.errors[i] for i in order if i in result.errors},
        }
        if action == "replay":
            out["replayed"] = replays
        print_json(out)
    elif not order:
        typer.echo("no execution matches")
    else:
        done, same = _DONE[action]
        rows = []
        for i in order:
            if i in result.errors:
                rows.append((i, "error", result.errors[i]))
            elif i in result.changed:
                rows.append((i, "changed", f"{done} as {replays[i]}" if i in replays else done))
            else:
                rows.append((i, "unchanged", same))
        columns = [
            Column("execution", [r[0] for r in rows]),
            Column("result", [_styled(r[1]) for r in rows]),
            Column("detail", [r[2] for r in rows], minimum=20),
        ]
        _print(columns, [[2]])
    if result.errors:
        what = "execution" if len(order) == 1 else "executions"
        fail(f"could not {action} {len(result.errors)} of {len(order)} {what}", NOT_COMPLETED)


def _action_command(action: Action, doc: str) -> Callable[..., None]:
    """The command of an action that takes no option of its own."""

    def command(
        execution_ids: IdsArgument = None,
        workflow: WorkflowFilter = None,
        status: StatusFilter = None,
        limit: LimitOption = 100,
        yes: YesOption = False,
        as_json: JsonOption = False,
        store: StoreOption = None,
    ) -> None:
        _control(action, execution_ids, workflow, status, limit, yes, as_json, store)

    command.__doc__ = doc
    return command


def cancel(
    execution_ids: IdsArgument = None,
    workflow: WorkflowFilter = None,
    status: StatusFilter = None,
    limit: LimitOption = 100,
    yes: YesOption = False,
    reason: Annotated[
        str | None, typer.Option(help="Why (the executions' error; default: cancelled).")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Cancel queued, running or paused executions and their sub-workflows."""
    _control("cancel", execution_ids, workflow, status, limit, yes, as_json, store, reason)


_ACTIONS: dict[str, Callable[..., None]] = {
    "pause": _action_command(
        "pause", "Pause running executions: no new node starts, running nodes finish."
    ),
    "resume": _action_command("resume", "Resume paused executions where they stopped."),
    "cancel": cancel,
    "retry": _action_command(
        "retry",
        "Run failed executions again from their failures (results that succeeded are kept).",
    ),
    "replay": _action_command(
        "replay", "Start a new execution of each one's workflow version with the same input."
    ),
}


# Resume tokens ------------------------------------------------------------------------

TokenArgument = Annotated[str, typer.Argument(metavar="TOKEN", help="The resume token.")]


def _token_json(record: ResumeTokenRecord, now: datetime) -> dict[str, Any]:
    return {
        "token": record.token,
        "execution_id": record.execution_id,
        "node_id": record.node_id,
        "state": record.state(now),
        "created_at": record.created_at.isoformat(),
        "expires_at": _iso(record.expires_at),
        "used_at": _iso(record.used_at),
        "revoked_at": _iso(record.revoked_at),
    }


@tokens_app.command("list", cls=SpaneCommand)
def tokens_list(
    execution: Annotated[
        str | None,
        typer.Option("--execution", metavar="ID", help="Only this execution's (id or prefix)."),
    ] = None,
    include_all: Annotated[
        bool, typer.Option("--all", help="Used, revoked and expired tokens too.")
    ] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Resume tokens, oldest first; by default those that can still resume their node."""

    async def action(engine: WorkflowEngine) -> list[dict[str, Any]]:
        execution_id = None if execution is None else await resolve_execution_id(engine, execution)
        found = await engine.list_resume_tokens(execution_id, active_only=not include_all)
        now = engine.clock.now()
        return [_token_json(r, now) for r in found]

    rows = _with_engine(store, action)
    if as_json:
        print_json(rows)
        return
    if not rows:
        typer.echo("no resume token" if include_all else "no active resume token")
        return
    expires = [datetime.fromisoformat(r["expires_at"]) if r["expires_at"] else None for r in rows]
    columns = [
        Column("token", [r["token"] for r in rows]),
        Column("execution", [r["execution_id"] for r in rows]),
        Column("node", [r["node_id"] for r in rows], minimum=8),
        Column("state", [_styled(r["state"]) for r in rows]),
        Column("expires", [_when(e) for e in expires], minimum=10),
    ]
    if execution is not None:  # one execution's: its id once, above
        typer.echo(f"execution {rows[0]['execution_id']}")
        del columns[1]
    _print(columns, [[len(columns) - 1, 2]])


def _json_data(data: str | None) -> Any:
    if data is None:
        return None
    try:
        return json.loads(data)
    except json.JSONDecodeError as exc:
        fail(f"--data is not valid JSON: {exc}")


@tokens_app.command("resume", cls=SpaneCommand)
def tokens_resume(
    token: TokenArgument,
    data: Annotated[
        str | None, typer.Option("--data", help="The wait node's output, as JSON.")
    ] = None,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Complete the node waiting for TOKEN with --data; its execution goes on."""
    value = _json_data(data)
    _need_redis()

    async def action(engine: WorkflowEngine) -> str:
        return await engine.resume(token, value)

    execution_id = _with_engine(store, action)
    if as_json:
        print_json({"execution_id": execution_id, "resumed": True})
    else:
        typer.echo(f"resumed: execution {execution_id} goes on")


@tokens_app.command("revoke", cls=SpaneCommand)
def tokens_revoke(
    token: TokenArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """TOKEN can no longer be used; its node keeps waiting (until its timeout or a cancel)."""

    async def action(engine: WorkflowEngine) -> tuple[ResumeTokenRecord, bool, str]:
        await engine.store.start()
        record = await engine.store.get_token(token)
        if record is None:
            raise ResumeTokenError("unknown resume token", details={"reason": "unknown"})
        changed = await engine.revoke_resume_token(token)
        return record, changed, record.state(engine.clock.now())

    record, changed, state = _with_engine(store, action)
    if not changed and state == "used":
        fail(f"the resume token was used already (node {record.node_id!r} of execution "
             f"{record.execution_id}): it cannot be revoked", NOT_COMPLETED)  # fmt: skip
    if as_json:
        print_json(
            {"execution_id": record.execution_id, "node_id": record.node_id, "changed": changed}
        )
    else:
        what = "revoked" if changed else "revoked already"
        typer.echo(f"{what}: the token of node {record.node_id} of execution {record.execution_id}")


# Workflows ----------------------------------------------------------------------------

WorkflowIdArgument = Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]


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

    records = _with_engine(store, action)
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
        Column("registered", [_when(r.created_at) for r in records], minimum=10),
    ]
    _print(columns, [[2], [0, 4]])


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

    record = _with_engine(store, action)
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
        f"registered {_when(record.created_at)}, hash {record.content_hash[:12]}"
    )
    if definition.description:
        console.print(escape(definition.description))
    _print(columns, [[2, 3], [0, 1]])


@workflows_app.command("versions", cls=SpaneCommand)
def workflows_versions(
    workflow_id: WorkflowIdArgument, as_json: JsonOption = False, store: StoreOption = None
) -> None:
    """Every stored version of a workflow, oldest first."""

    async def action(engine: WorkflowEngine) -> list[WorkflowVersionRecord]:
        return await engine.list_workflow_versions(workflow_id)

    records = _with_engine(store, action)
    if not records:
        fail(f"workflow {workflow_id!r} is not registered", NOT_COMPLETED)
    if as_json:
        print_json([_summary(r) for r in records])
        return
    columns = [
        Column("version", [str(r.version) for r in records]),
        Column("registered", [_when(r.created_at) for r in records], minimum=10),
        Column("hash", [r.content_hash[:12] for r in records]),
        Column("nodes", [str(len(r.definition.nodes)) for r in records]),
        Column("active", ["yes" if r.active else "no" for r in records]),
        Column("notes", [r.change_notes or "-" for r in records], minimum=8),
    ]
    _print(columns, [[5], [1]])


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

    found = _with_engine(store, action)
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
                    "last_tick": _iso(s.last_tick),
                    "next_tick": _iso(s.next_tick),
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
        Column("state", [_styled("paused" if s.paused else "active") for s in found]),
        Column("next tick", [_when(s.next_tick) for s in found], minimum=10),
    ]
    _print(columns, [[2, 4], [0]])


def _set_schedule(schedule_id: str, paused: bool, as_json: bool, store: Store | None) -> None:
    async def action(engine: WorkflowEngine) -> bool:
        if paused:
            return await engine.pause_schedule(schedule_id)
        return await engine.resume_schedule(schedule_id)

    changed = _with_engine(store, action)
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
    """Add these commands to the ``spane`` command (the execution actions to ``spane
    executions``, which ``cli_inspect`` makes)."""
    for name, command in _ACTIONS.items():
        executions_app.command(name, cls=SpaneCommand)(command)
    app.add_typer(tokens_app)
    app.add_typer(workflows_app)
    app.add_typer(schedules_app)
