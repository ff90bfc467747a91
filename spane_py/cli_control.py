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
from spane_py._cli_tables import Column, iso, print_fitted, styled
from spane_py.cli_inspect import (
    CANDIDATES,
    JsonOption,
    executions_app,
    resolve_execution_id,
    when,
    with_store_engine,
)
from spane_py.engine.control import BulkResult
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import ExecutionNotFoundError, ResumeTokenError
from spane_py.records import ResumeTokenRecord
from spane_py.state import ExecutionStatus

Action = Literal["pause", "resume", "cancel", "retry", "replay"]

tokens_app = typer.Typer(
    name="tokens", help="Resume tokens of waiting nodes.", no_args_is_help=True, cls=SpaneGroup
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

_DONE = {
    "pause": ("paused", "paused already"),
    "resume": ("resumed", "running already"),
    "cancel": ("cancelled", "cancelled already"),
    "retry": ("retried from its failures", ""),
    "replay": ("replayed", ""),
}


def _need_redis() -> None:
    if not load_settings(None).redis_url:
        fail("this command sends jobs to the workers: set REDIS_URL (the one your workers use)")


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
) -> BulkResult:
    """The action on each id, through the engine's bulk methods (for a replay,
    ``created`` maps each id to its new execution)."""
    if not ids:
        return BulkResult()
    if action == "pause":
        return await engine.pause_executions(ids)
    if action == "resume":
        return await engine.resume_executions(ids)
    if action == "cancel":
        return await engine.cancel_executions(ids, reason)
    if action == "retry":
        return await engine.retry_executions(ids)
    return await engine.replay_executions(ids)


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

    async def main(engine: WorkflowEngine) -> tuple[list[str], BulkResult]:
        if given:
            ids, missing = await _resolve_all(engine, given)
        else:
            ids, missing = await _select(engine, action, workflow, status, limit, yes), {}
        result = await _apply(engine, action, ids, reason)
        result.errors.update(missing)
        return [*ids, *missing], result

    order, result = with_store_engine(store, main)
    replays = result.created
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
            Column("result", [styled(r[1]) for r in rows]),
            Column("detail", [r[2] for r in rows], minimum=20),
        ]
        print_fitted(columns, [[2]])
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
        "expires_at": iso(record.expires_at),
        "used_at": iso(record.used_at),
        "revoked_at": iso(record.revoked_at),
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

    rows = with_store_engine(store, action)
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
        Column("state", [styled(r["state"]) for r in rows]),
        Column("expires", [when(e) for e in expires], minimum=10),
    ]
    if execution is not None:  # one execution's: its id once, above
        typer.echo(f"execution {rows[0]['execution_id']}")
        del columns[1]
    print_fitted(columns, [[len(columns) - 1, 2]])


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

    execution_id = with_store_engine(store, action)
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

    record, changed, state = with_store_engine(store, action)
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


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command (the execution actions to ``spane
    executions``, which ``cli_inspect`` makes)."""
    for name, command in _ACTIONS.items():
        executions_app.command(name, cls=SpaneCommand)(command)
    app.add_typer(tokens_app)
