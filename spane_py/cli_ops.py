"""``spane queues`` and ``spane workers``: what the workers are doing, from Redis.

    spane queues [--json]    each queue: pending and running jobs, the oldest wait, and how
                             many live workers consume it ("no worker!" when jobs wait and
                             none does)
    spane workers [--json]   the live workers: id, the queues they consume, concurrency,
                             jobs running at their last heartbeat, since when they run

They read the Redis the settings name (``REDIS_URL``) under the key prefix
``SPANE_KEY_PREFIX``; no store is needed.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict
from typing import Annotated, TypeVar

import typer
from rich.console import Console
from rich.text import Text

from spane_py._cli_support import (
    SpaneCommand,
    fail,
    load_settings,
    print_json,
    run_engine_action,
    setup_logging,
)
from spane_py._cli_tables import Column, build_table, fit_widths, minimum_widths, print_table
from spane_py.engine.engine import WorkflowEngine
from spane_py.engine.queue_view import QueueInfo
from spane_py.queue.presence import LiveWorker
from spane_py.registry import NodeRegistry
from spane_py.stores.memory import InMemoryExecutionStore

T = TypeVar("T")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]


def _with_redis(action: Callable[[WorkflowEngine], Awaitable[T]]) -> T:
    settings = load_settings(None, export=False)
    setup_logging("WARNING")
    if not settings.redis_url:
        fail("these commands read Redis: set REDIS_URL (the one your workers use)")

    return run_engine_action(
        lambda: WorkflowEngine(
            NodeRegistry(),
            InMemoryExecutionStore(),
            **settings.engine_kwargs(store=False),
            event_stream=False,
        ),
        action,
    )


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 120:
        return f"{seconds:.1f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def queues(json_output: JsonOption = False) -> None:
    """Each queue: jobs pending and running, the oldest wait, the live workers on it."""

    async def action(engine: WorkflowEngine) -> list[QueueInfo]:
        await engine.start()
        return await engine.list_queues()

    found = _with_redis(action)
    if json_output:
        print_json([{**asdict(q), "unserved": q.unserved} for q in found])
        return
    console = Console()
    columns = [
        Column("queue", [q.name for q in found], minimum=8),
        Column("queued", [str(q.queued) for q in found]),
        Column("running", [str(q.running) for q in found]),
        Column("oldest wait", [_age(q.oldest_waiting_s) for q in found]),
        Column(
            "workers",
            [Text("0 - no worker!", "bold red") if q.unserved else str(q.workers) for q in found],
        ),
    ]
    widths = fit_widths(columns, console.width, [[0]]) or minimum_widths(columns)
    print_table(console, build_table(columns, widths), widths)


def workers(json_output: JsonOption = False) -> None:
    """The live workers: the queues they consume, their concurrency and running jobs."""

    async def action(engine: WorkflowEngine) -> list[LiveWorker]:
        await engine.start()
        return await engine.live_workers()

    live = _with_redis(action)
    if json_output:
        print_json([asdict(w) for w in live])
        return
    console = Console()
    if not live:
        console.print("no live worker")
        return
    now = time.time()
    columns = [
        Column("worker", [w.worker_id for w in live], minimum=12),
        Column("queues", [", ".join(w.queues) or "-" for w in live], minimum=8),
        Column("concurrency", [str(w.concurrency) for w in live]),
        Column("running", [str(w.running) for w in live]),
        Column("up", [_age(now - w.started_at) if w.started_at else "-" for w in live]),
        Column("beat", [_age(w.seconds_since_beat) for w in live]),
    ]
    widths = fit_widths(columns, console.width, [[1, 0]]) or minimum_widths(columns)
    print_table(console, build_table(columns, widths), widths)


def register(app: typer.Typer) -> None:
    """Add these commands to the ``spane`` command."""
    app.command("queues", cls=SpaneCommand)(queues)
    app.command("workers", cls=SpaneCommand)(workers)
