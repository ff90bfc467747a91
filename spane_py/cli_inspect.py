"""``spane executions``, ``spane trace`` and ``spane dlq``: what ran, from the store.

    spane executions list [--workflow W] [--status S] [--limit N] [--json]
    spane executions show EXECUTION_ID [--json]     a tree: each node's status and duration
    spane trace EXECUTION_ID [--json] [--width N]   a Gantt chart of the node attempts
    spane dlq list [--limit N] [--all] [--json]
    spane dlq retry DLQ_ID

They read the store the settings name (``DATABASE_URL``, ``SPANE_DB_SCHEMA``; ``--store
postgres`` without a URL: the embedded server in ``.spane/pg``): the in-memory store lives in
one process and has nothing to show here. ``dlq retry`` also needs Redis (``REDIS_URL``).

EXECUTION_ID may be any unique prefix of the id (``01a24187-cd76``): a prefix that several
executions share is refused with their ids (exit code 2), one that none has exits 1. The
tables fit the terminal's width (``COLUMNS``): ids stay whole, names wrap, and an error
column that has no room moves under the table.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spane_py._cli_support import (
    SpaneCommand,
    SpaneGroup,
    Store,
    StoreOption,
    fail,
    load_settings,
    print_json,
    run_engine_action,
    setup_logging,
)
from spane_py._cli_tables import (
    Column,
    build_table,
    fit_widths,
    minimum_widths,
    print_table,
    table_width,
)
from spane_py.demo import format_ms, render_execution, unicode_ok
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import ExecutionNotFoundError
from spane_py.registry import NodeRegistry
from spane_py.state import ExecutionStatus, ExecutionTrace, SpanView

T = TypeVar("T")

executions_app = typer.Typer(
    name="executions", help="List executions and show one.", no_args_is_help=True, cls=SpaneGroup
)
dlq_app = typer.Typer(
    name="dlq", help="The dead-letter queue.", no_args_is_help=True, cls=SpaneGroup
)
ExecutionIdArgument = Annotated[
    str,
    typer.Argument(
        metavar="EXECUTION_ID", help="The execution's id, or a prefix of it that no other has."
    ),
]
# How many ids an ambiguous prefix lists.
CANDIDATES = 10
# The narrowest an error column gets before it moves under the table.
ERROR_MIN_WIDTH = 20

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

_STATUS_STYLE = {
    "completed": "green",
    "succeeded": "green",
    "failed": "red",
    "cancelled": "red",
    "running": "cyan",
    "retrying": "yellow",
    "paused": "yellow",
    "waiting": "magenta",
    "queued": "blue",
    "skipped": "dim",
}


def with_store_engine(store: Store | None, action: Callable[[WorkflowEngine], Awaitable[T]]) -> T:
    settings = load_settings(store, export=False)
    setup_logging("WARNING")
    if settings.store_kind != "postgres":
        fail(
            "these commands read the PostgreSQL store: set DATABASE_URL (or pass "
            "--store postgres for the embedded server in .spane/pg)"
        )

    return run_engine_action(
        lambda: WorkflowEngine(NodeRegistry(), **settings.engine_kwargs()), action
    )


async def resolve_execution_id(engine: WorkflowEngine, given: str) -> str:
    """The whole id of the execution ``given`` names: the id itself, or a prefix of it
    that no other execution's id has. A prefix several ids share is a usage error (exit
    code 2) listing them; one that no id has raises ``ExecutionNotFoundError``."""
    prefix = given.strip()
    if not prefix:
        fail("the execution id is empty")
    await engine.store.start()
    found = await engine.store.find_execution_ids(prefix, limit=CANDIDATES + 1)
    if not found:
        whole = len(prefix) == 36
        raise ExecutionNotFoundError(
            f"execution {given!r} does not exist"
            if whole
            else f"no execution has an id that starts with {given!r}",
            execution_id=given,
        )
    if len(found) > 1:
        more = "\n  (and more)" if len(found) > CANDIDATES else ""
        fail(
            f"{given!r} is the start of more than one execution id; give more of it:\n  "
            + "\n  ".join(found[:CANDIDATES])
            + more
        )
    return found[0]


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


def _error_line(error: str | None) -> str:
    """The first line of an error, at most 60 characters."""
    line = (error or "").strip().split("\n", 1)[0]
    return line if len(line) <= 60 else line[:59] + "…"


def _print_with_errors(
    console: Console,
    columns: list[Column],
    errors: list[str],
    keys: list[str],
    *,
    error_at: int,
    stages: list[list[int]],
    stages_without: list[list[int]],
) -> None:
    """The table with an error column at ``error_at`` when some row has an error and the
    column fits at least ``ERROR_MIN_WIDTH`` wide (``stages``: who shrinks, the error
    column first); else without it (``stages_without``), the errors listed under the table
    after the row's key (a whole id)."""
    if any(errors):
        with_error = list(columns)
        with_error.insert(error_at, Column("error", errors, minimum=ERROR_MIN_WIDTH))
        widths = fit_widths(with_error, console.width, stages)
        if widths is not None:
            print_table(console, build_table(with_error, widths), widths)
            return
    widths = fit_widths(columns, console.width, stages_without) or minimum_widths(columns)
    print_table(console, build_table(columns, widths), widths)
    if any(errors):
        console.print()
    for key, error in zip(keys, errors, strict=True):
        if error:
            console.print(Text.assemble((key, "bold"), "  ", (error, "red")))


@executions_app.command("list", cls=SpaneCommand)
def executions_list(
    workflow: Annotated[str | None, typer.Option(help="Only this workflow.")] = None,
    status: Annotated[
        ExecutionStatus | None, typer.Option(case_sensitive=False, help="Only this status.")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000, help="At most this many.")] = 20,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """The newest executions, newest first."""

    async def action(engine: WorkflowEngine) -> Any:
        await engine.store.start()
        page = await engine.store.list_executions(workflow_id=workflow, status=status, limit=limit)
        return page.items

    items = with_store_engine(store, action)
    if as_json:
        print_json(
            [
                {
                    "execution_id": r.execution_id,
                    "workflow_id": r.workflow_id,
                    "version": r.workflow_version,
                    "status": r.status.value,
                    "created_at": r.created_at.isoformat(),
                    "completed_at": r.completed_at.isoformat() if r.completed_at else None,
                    "error": r.error,
                }
                for r in items
            ]
        )
        return
    took = [
        format_ms((r.completed_at - (r.started_at or r.created_at)).total_seconds() * 1000)
        if r.completed_at
        else "-"
        for r in items
    ]
    columns = [
        Column("execution", [r.execution_id for r in items]),
        Column("workflow", [f"{r.workflow_id} v{r.workflow_version}" for r in items], minimum=8),
        Column(
            "status",
            [Text(r.status.value, style=_STATUS_STYLE.get(r.status.value, "")) for r in items],
        ),
        Column("started", [when(r.started_at or r.created_at) for r in items], minimum=10),
        Column("took", took),
    ]
    _print_with_errors(
        Console(highlight=False),
        columns,
        [_error_line(r.error) for r in items],
        [r.execution_id for r in items],
        error_at=5,
        stages=[[5], [3]],
        stages_without=[[3], [1]],
    )


@executions_app.command("show", cls=SpaneCommand)
def executions_show(
    execution_id: ExecutionIdArgument,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """One execution as a tree of its nodes, with status, start offset and duration (one
    that retention archived and deleted: as archived, from ``SPANE_ARCHIVE_DIR``)."""

    async def action(engine: WorkflowEngine) -> Any:
        try:
            state = await engine.get_execution(await resolve_execution_id(engine, execution_id))
        except ExecutionNotFoundError:
            archived = await engine.get_archived_execution(execution_id.strip())
            if archived is None:
                raise
            return archived, None
        definition = await engine.get_workflow(state.workflow_id, state.workflow_version)
        return state, definition

    state, definition = with_store_engine(store, action)
    if isinstance(state, dict):
        show_archived(state, as_json=as_json)
        return
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    console = Console(highlight=False)
    console.print(
        render_execution(state, definition, unicode=unicode_ok(console), width=console.width)
    )


def show_archived(archived: dict[str, Any], *, as_json: bool) -> None:
    """An archived execution: as archived (``--json``), or a line and one per node."""
    if as_json:
        print_json({"archived": True, **archived})
        return
    e = archived["execution"]
    typer.echo(
        f"execution {e['execution_id']} (archived {archived['archived_at']}): {e['status']}, "
        f"workflow {e['workflow_id']} v{e['workflow_version']}, finished {e['completed_at']}"
    )
    for node in archived["nodes"]:
        typer.echo(f"  {node['node_id']}  {node['status']}  attempts={node['attempts']}")


def trace(
    execution_id: ExecutionIdArgument,
    as_json: JsonOption = False,
    width: Annotated[
        int | None,
        typer.Option(
            min=10,
            max=400,
            help="Width of the bars, in columns (default: what the terminal's width leaves).",
        ),
    ] = None,
    store: StoreOption = None,
) -> None:
    """The execution's node attempts as a Gantt chart (one bar per span)."""

    async def action(engine: WorkflowEngine) -> ExecutionTrace:
        return await engine.get_trace(await resolve_execution_id(engine, execution_id))

    result = with_store_engine(store, action)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console = Console(highlight=False)
    table, widths = render_gantt(
        result, width=width, terminal_width=console.width, unicode=unicode_ok(console)
    )
    print_table(console, table, widths)


# The narrowest bar the chart's width leaves.
MIN_BAR_WIDTH = 12


def render_gantt(
    trace: ExecutionTrace,
    *,
    width: int | None = None,
    terminal_width: int = 80,
    unicode: bool = True,
) -> tuple[Table, list[int]]:
    """One row per span: node, attempt, status, a bar placed on the execution's time axis,
    and the duration; and the columns' widths. The axis runs from the execution's start to
    its last span's end. The bars are ``width`` columns wide, by default what the table
    leaves of ``terminal_width`` (node names wrap first, down to 8 columns, to leave the
    bars at least ``MIN_BAR_WIDTH``)."""
    execution = trace.execution
    spans = sorted(trace.spans, key=lambda s: (s.started_at, s.span_id))
    start = min([execution.started_at, *(s.started_at for s in spans)])
    ends = [s.ended_at or s.started_at for s in spans]
    end = max([execution.completed_at or start, *ends])
    total = max((end - start).total_seconds(), 1e-6)
    full, empty = ("█", "·") if unicode else ("#", ".")
    axis = f"0 … {format_ms(total * 1000)}" if unicode else f"0 .. {format_ms(total * 1000)}"
    columns = [
        Column("node", [s.node_id for s in spans], minimum=8),
        Column("try", [str(s.attempt) for s in spans]),
        Column("status", [s.status for s in spans]),
        Column(axis, []),
        Column("took", [format_ms(s.duration_ms) for s in spans]),
    ]
    widths = [c.natural for c in columns]
    if width is None:
        widths[3] = 0
        node_min = min(widths[0], 8)
        spare = terminal_width - table_width(widths)
        if spare < MIN_BAR_WIDTH:  # node names wrap to leave the bars room
            widths[0] = max(node_min, widths[0] - (MIN_BAR_WIDTH - spare))
            spare = terminal_width - table_width(widths)
        width = max(spare, MIN_BAR_WIDTH)
    widths[3] = width
    cells: list[list[str | Text]] = [
        [
            span.node_id,
            str(span.attempt),
            Text(span.status, style=_STATUS_STYLE.get(span.status, "")),
            Text(
                _bar(span, start, total, width, full, empty),
                style=_STATUS_STYLE.get(span.status, ""),
            ),
            format_ms(span.duration_ms),
        ]
        for span in spans
    ]
    columns = [
        Column(c.header, [row[i] for row in cells], c.minimum) for i, c in enumerate(columns)
    ]
    title = (
        f"{execution.workflow_id} v{execution.workflow_version} — {execution.status.value}"
        if unicode
        else f"{execution.workflow_id} v{execution.workflow_version} - {execution.status.value}"
    )
    table = build_table(columns, widths, title=title, caption=f"execution {execution.execution_id}")
    return table, widths


def _bar(span: SpanView, start: datetime, total: float, width: int, full: str, empty: str) -> str:
    offset = (span.started_at - start).total_seconds() / total
    length = ((span.ended_at or span.started_at) - span.started_at).total_seconds() / total
    first = min(int(offset * width), width - 1)
    cells = max(1, round(length * width))
    cells = min(cells, width - first)
    return empty * first + full * cells + empty * (width - first - cells)


@dlq_app.command("list", cls=SpaneCommand)
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    include_retried: Annotated[bool, typer.Option("--all", help="Retried items too.")] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Nodes that failed for good, newest first."""

    async def action(engine: WorkflowEngine) -> Any:
        return await engine.get_dlq_items(limit, include_retried=include_retried)

    items = with_store_engine(store, action)
    if as_json:
        print_json(
            [
                {
                    "dlq_id": i.dlq_id,
                    "execution_id": i.execution_id,
                    "workflow_id": i.workflow_id,
                    "node_id": i.node_id,
                    "error": i.error,
                    "attempts": i.attempts,
                    "failed_at": i.failed_at.isoformat(),
                    "retried_at": i.retried_at.isoformat() if i.retried_at else None,
                }
                for i in items
            ]
        )
        return
    columns = [
        Column("id", [str(i.dlq_id) for i in items]),
        Column("workflow", [i.workflow_id for i in items], minimum=8),
        Column("node", [i.node_id for i in items], minimum=8),
        Column("tries", [str(i.attempts) for i in items]),
        Column("failed", [when(i.failed_at) for i in items], minimum=10),
        Column("execution", [i.execution_id for i in items]),
    ]
    _print_with_errors(
        Console(highlight=False),
        columns,
        [_error_line(i.error) for i in items],
        [f"#{i.dlq_id}" for i in items],
        error_at=5,
        stages=[[5], [4]],
        stages_without=[[4], [1, 2]],
    )


@dlq_app.command("retry", cls=SpaneCommand)
def dlq_retry(
    dlq_id: Annotated[int, typer.Argument(metavar="DLQ_ID")],
    store: StoreOption = None,
) -> None:
    """Run the item's node again: its execution goes back to running (workers finish it)."""

    async def action(engine: WorkflowEngine) -> Any:
        return await engine.retry_dlq_item(dlq_id)

    item = with_store_engine(store, action)
    typer.echo(f"retrying node {item.node_id} of execution {item.execution_id}")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command."""
    app.add_typer(executions_app)
    app.add_typer(dlq_app)
    app.command("trace", cls=SpaneCommand)(trace)
