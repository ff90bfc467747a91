"""``spane executions``, ``spane trace`` and ``spane dlq``: what ran, from the store.

    spane executions list [--workflow W] [--status S] [--limit N] [--json]
    spane executions show EXECUTION_ID [--json]     a tree: each node's status and duration
    spane trace EXECUTION_ID [--json]               a Gantt chart of the node attempts
    spane dlq list [--limit N] [--all] [--json]
    spane dlq retry DLQ_ID

They read the store the settings name (``DATABASE_URL``, ``SPANE_DB_SCHEMA``; ``--store
postgres`` without a URL: the embedded server in ``.spane/pg``): the in-memory store lives in
one process and has nothing to show here. ``dlq retry`` also needs Redis (``REDIS_URL``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from spane_py._cli_support import (
    NOT_COMPLETED,
    Store,
    StoreOption,
    fail,
    load_settings,
    print_json,
    setup_logging,
)
from spane_py.demo import format_ms, render_execution, unicode_ok
from spane_py.engine.engine import WorkflowEngine
from spane_py.errors import ExecutionNotFoundError, SpaneError
from spane_py.registry import NodeRegistry
from spane_py.state import ExecutionStatus, ExecutionTrace, SpanView

T = TypeVar("T")

executions_app = typer.Typer(
    name="executions", help="List executions and show one.", no_args_is_help=True
)
dlq_app = typer.Typer(name="dlq", help="The dead-letter queue.", no_args_is_help=True)

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


def _with_engine(store: Store | None, action: Callable[[WorkflowEngine], Awaitable[T]]) -> T:
    settings = load_settings(store, export=False)
    setup_logging("WARNING")
    if settings.store_kind != "postgres":
        fail(
            "these commands read the PostgreSQL store: set DATABASE_URL (or pass "
            "--store postgres for the embedded server in .spane/pg)"
        )

    async def main() -> T:
        engine = WorkflowEngine(NodeRegistry(), **settings.engine_kwargs())
        try:
            return await action(engine)
        finally:
            await engine.close(grace_seconds=0.5)

    try:
        return asyncio.run(main())
    except ExecutionNotFoundError as exc:
        fail(str(exc), NOT_COMPLETED)
    except SpaneError as exc:
        fail(str(exc), NOT_COMPLETED)


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S") if value is not None else "-"


@executions_app.command("list")
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

    items = _with_engine(store, action)
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
    table = Table("execution", "workflow", "status", "started", "took", "error")
    for r in items:
        took = (
            format_ms((r.completed_at - (r.started_at or r.created_at)).total_seconds() * 1000)
            if r.completed_at
            else "-"
        )
        table.add_row(
            r.execution_id,
            f"{r.workflow_id} v{r.workflow_version}",
            Text(r.status.value, style=_STATUS_STYLE.get(r.status.value, "")),
            _when(r.started_at or r.created_at),
            took,
            (r.error or "")[:60],
        )
    Console().print(table)


@executions_app.command("show")
def executions_show(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """One execution as a tree of its nodes, with status, start offset and duration."""

    async def action(engine: WorkflowEngine) -> Any:
        await engine.store.start()
        state = await engine.get_execution(execution_id)
        definition = await engine.get_workflow(state.workflow_id, state.workflow_version)
        return state, definition

    state, definition = _with_engine(store, action)
    if as_json:
        print_json(state.model_dump(mode="json"))
        return
    console = Console(highlight=False)
    console.print(
        render_execution(state, definition, unicode=unicode_ok(console), width=console.width)
    )


def trace(
    execution_id: Annotated[str, typer.Argument(metavar="EXECUTION_ID")],
    as_json: JsonOption = False,
    width: Annotated[int, typer.Option(min=20, max=400, help="Chart width, columns.")] = 60,
    store: StoreOption = None,
) -> None:
    """The execution's node attempts as a Gantt chart (one bar per span)."""

    async def action(engine: WorkflowEngine) -> ExecutionTrace:
        await engine.store.start()
        return await engine.get_trace(execution_id)

    result = _with_engine(store, action)
    if as_json:
        print_json(result.model_dump(mode="json"))
        return
    console = Console(highlight=False)
    console.print(render_gantt(result, width=width, unicode=unicode_ok(console)))


def render_gantt(trace: ExecutionTrace, *, width: int = 60, unicode: bool = True) -> Table:
    """One row per span: node, attempt, status, a bar placed on the execution's time axis,
    and the duration. The axis runs from the execution's start to its last span's end."""
    execution = trace.execution
    spans = sorted(trace.spans, key=lambda s: (s.started_at, s.span_id))
    start = min([execution.started_at, *(s.started_at for s in spans)])
    ends = [s.ended_at or s.started_at for s in spans]
    end = max([execution.completed_at or start, *ends])
    total = max((end - start).total_seconds(), 1e-6)
    full, empty = ("█", "·") if unicode else ("#", ".")
    table = Table(
        "node",
        "try",
        "status",
        f"0 … {format_ms(total * 1000)}" if unicode else f"0 .. {format_ms(total * 1000)}",
        "took",
        title=f"{execution.workflow_id} v{execution.workflow_version} — {execution.status.value}"
        if unicode
        else f"{execution.workflow_id} v{execution.workflow_version} - {execution.status.value}",
        caption=f"execution {execution.execution_id}",
    )
    for span in spans:
        style = _STATUS_STYLE.get(span.status, "")
        table.add_row(
            span.node_id,
            str(span.attempt),
            Text(span.status, style=style),
            Text(_bar(span, start, total, width, full, empty), style=style),
            format_ms(span.duration_ms),
        )
    return table


def _bar(span: SpanView, start: datetime, total: float, width: int, full: str, empty: str) -> str:
    offset = (span.started_at - start).total_seconds() / total
    length = ((span.ended_at or span.started_at) - span.started_at).total_seconds() / total
    first = min(int(offset * width), width - 1)
    cells = max(1, round(length * width))
    cells = min(cells, width - first)
    return empty * first + full * cells + empty * (width - first - cells)


@dlq_app.command("list")
def dlq_list(
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 50,
    include_retried: Annotated[bool, typer.Option("--all", help="Retried items too.")] = False,
    as_json: JsonOption = False,
    store: StoreOption = None,
) -> None:
    """Nodes that failed for good, newest first."""

    async def action(engine: WorkflowEngine) -> Any:
        return await engine.get_dlq_items(limit, include_retried=include_retried)

    items = _with_engine(store, action)
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
    table = Table("id", "workflow", "node", "attempts", "failed", "error", "execution")
    for i in items:
        table.add_row(
            str(i.dlq_id),
            i.workflow_id,
            i.node_id,
            str(i.attempts),
            _when(i.failed_at),
            i.error[:60],
            i.execution_id,
        )
    Console().print(table)


@dlq_app.command("retry")
def dlq_retry(
    dlq_id: Annotated[int, typer.Argument(metavar="DLQ_ID")],
    store: StoreOption = None,
) -> None:
    """Run the item's node again: its execution goes back to running (workers finish it)."""

    async def action(engine: WorkflowEngine) -> Any:
        return await engine.retry_dlq_item(dlq_id)

    item = _with_engine(store, action)
    typer.echo(f"retrying node {item.node_id} of execution {item.execution_id}")


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command."""
    app.add_typer(executions_app)
    app.add_typer(dlq_app)
    app.command("trace")(trace)
