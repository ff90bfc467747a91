"""The workflow ``spane demo`` runs, and the tree printer ``spane demo`` and ``spane run`` use.

The demo reviews an order: ``fetch`` loads it, ``enrich`` and ``score`` look at it in
parallel (fan-out), ``route`` joins them (fan-in) and branches — it chooses ``approve`` for a
low risk and ``review`` otherwise, so the other one is skipped — and ``report`` joins the two
branches, running with the result of the one that ran.

    fetch ─┬─ enrich ─┬─ route ─┬─ approve ─┬─ report
           └─ score  ─┘         └─ review  ─┘
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
import time
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.tree import Tree

from spane_py.context import ExecutionContext
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import WorkflowDefinition
from spane_py.dsl import Workflow
from spane_py.engine.engine import WorkflowEngine
from spane_py.registry import NodeRegistry
from spane_py.results import ExecutionResult, success_result
from spane_py.settings import EMBEDDED_PG_DIR, SpaneSettings
from spane_py.state import ExecutionState, ExecutionStatus, NodeResult, NodeStatus

DEMO_WORKFLOW_ID = "order-review"
DEMO_NODES = ("fetch", "enrich", "score", "route", "approve", "review", "report")

# Orders the demo cycles through: the first is approved, the second goes to review.
SAMPLE_ORDERS: tuple[dict[str, Any], ...] = (
    {"order_id": 1001, "customer": "ada", "amount": 120.0},
    {"order_id": 1002, "customer": "zed", "amount": 2450.0},
    {"order_id": 1003, "customer": "grace", "amount": 640.0},
    {"order_id": 1004, "customer": "linus", "amount": 1890.0},
)
_CUSTOMERS = {"ada": ("gold", 42), "grace": ("silver", 11), "linus": ("silver", 7)}

demo_workflow = Workflow(
    DEMO_WORKFLOW_ID,
    name="Order review",
    description="fan-out, fan-in, a branch and a join",
)


@demo_workflow.node()
async def fetch(order: dict[str, Any]) -> dict[str, Any]:
    """Load the order and its lines."""
    await asyncio.sleep(0.02)
    lines = max(1, int(order["amount"]) // 400)
    return {**order, "lines": lines}


@demo_workflow.node(after=fetch)
async def enrich(order: dict[str, Any]) -> dict[str, Any]:
    """Look the customer up."""
    await asyncio.sleep(0.03)
    tier, orders = _CUSTOMERS.get(order["customer"], ("new", 0))
    return {"customer": order["customer"], "tier": tier, "orders_last_year": orders}


@demo_workflow.node(after=fetch)
async def score(order: dict[str, Any]) -> dict[str, Any]:
    """Estimate the risk of the order (runs in parallel with ``enrich``)."""
    await asyncio.sleep(0.04)
    risk = round(min(order["amount"] / 3000, 0.95), 2)
    return {"order_id": order["order_id"], "amount": order["amount"], "risk": risk}


@demo_workflow.node(after=[enrich, score])
async def route(parents: dict[str, Any], ctx: ExecutionContext) -> ExecutionResult:
    """Join ``enrich`` and ``score``; branch to ``approve`` or ``review``."""
    customer, scored = parents["enrich"], parents["score"]
    risk = scored["risk"] - (0.2 if customer["tier"] == "gold" else 0.0)
    choice = "approve" if risk < 0.5 else "review"
    ctx.log("info", "routed", choice=choice, risk=risk)
    data = {**scored, "tier": customer["tier"], "adjusted_risk": round(risk, 2)}
    return success_result(data, next_nodes=[choice])


@demo_workflow.node(after=route)
async def approve(order: dict[str, Any]) -> dict[str, Any]:
    """Approve automatically."""
    await asyncio.sleep(0.01)
    return {"order_id": order["order_id"], "decision": "approved"}


@demo_workflow.node(after=route)
async def review(order: dict[str, Any]) -> dict[str, Any]:
    """Open a manual review ticket."""
    await asyncio.sleep(0.015)
    return {"order_id": order["order_id"], "decision": "manual review", "ticket": "REV-1"}


@demo_workflow.node(after=[approve, review])
async def report(outcomes: dict[str, Any]) -> dict[str, Any]:
    """Join the branches: only the one that ran is in the input."""
    (branch, outcome), *_ = outcomes.items()
    return {"order_id": outcome["order_id"], "decision": outcome["decision"], "via": branch}


# Printing ------------------------------------------------------------------------

_ICONS = {
    NodeStatus.SUCCEEDED: ("✔", "+", "green"),
    NodeStatus.FAILED: ("✘", "x", "red"),
    NodeStatus.SKIPPED: ("⊘", "-", "yellow"),
    NodeStatus.CANCELLED: ("■", "#", "red"),
    NodeStatus.RUNNING: ("▶", ">", "cyan"),
    NodeStatus.WAITING: ("◷", "~", "magenta"),
    NodeStatus.QUEUED: ("…", ".", "blue"),
    NodeStatus.PENDING: ("○", "o", "dim"),
}
_EXECUTION_STYLE = {
    ExecutionStatus.COMPLETED: ("✔", "+", "bold green"),
    ExecutionStatus.FAILED: ("✘", "x", "bold red"),
    ExecutionStatus.CANCELLED: ("■", "#", "bold red"),
    ExecutionStatus.PAUSED: ("‖", "=", "bold yellow"),
    ExecutionStatus.RUNNING: ("▶", ">", "bold cyan"),
    ExecutionStatus.QUEUED: ("…", ".", "bold blue"),
}


def format_ms(ms: float | None) -> str:
    if ms is None:
        return "-"
    if ms >= 1000:
        return f"{ms / 1000:.2f} s"
    if ms >= 10:
        return f"{ms:.0f} ms"
    return f"{ms:.1f} ms"


def abridge(value: Any, width: int = 72, *, unicode: bool = True) -> str:
    """Compact JSON of ``value``, cut to ``width`` characters."""
    try:
        text = json.dumps(value, ensure_ascii=not unicode, separators=(", ", ": "), default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return cut(text, width, unicode=unicode)


def cut(text: str, width: int, *, unicode: bool = True) -> str:
    """``text`` on one line, at most ``width`` characters (ASCII only unless ``unicode``)."""
    text = " ".join(text.split())
    if not unicode:
        text = text.encode("ascii", "backslashreplace").decode("ascii")
    if len(text) <= width:
        return text
    return text[: width - 1] + "…" if unicode else text[: max(width - 3, 0)] + "..."


def unicode_ok(console: Console) -> bool:
    return console.encoding.lower().replace("-", "").startswith("utf")


def render_execution(
    state: ExecutionState,
    definition: WorkflowDefinition,
    *,
    unicode: bool = True,
    width: int = 100,
) -> Tree:
    """The execution as a tree: each node under the parent that released it (the one that
    finished last; the first parent for a node that did not run), with status, start offset,
    duration and abridged data. Joins name all their parents; skipped nodes show as such.
    ``width`` is the line length the data is abridged to fit."""
    graph = compile_workflow(definition)
    results = state.node_results
    pick = 0 if unicode else 1

    icons = _EXECUTION_STYLE.get(state.status, ("?", "?", "bold"))
    took = f" in {format_ms(state.duration_ms)}" if state.duration_ms is not None else ""
    root = Tree(
        f"[{icons[2]}]{icons[pick]} {state.status.value}[/]{took}  "
        f"[bold]{escape(state.workflow_id)}[/] v{state.workflow_version}\n"
        f"[dim]execution {escape(state.execution_id)}[/]",
        guide_style="dim",
    )
    if state.error:
        root.add(f"[red]{escape(cut(state.error, max(width - 6, 40), unicode=unicode))}[/]")

    placed: dict[str, tuple[Tree, int]] = {}
    for node_id in graph.order:
        parents = graph.parents.get(node_id, ())
        under, depth = root, 0
        if parents:
            under, depth = placed.get(_primary_parent(parents, results), (root, 0))
        label = _node_label(
            node_id,
            results.get(node_id),
            state,
            parents if len(parents) > 1 else (),
            pick,
            data_width=max(width - 4 * (depth + 1) - 2, 30),
        )
        placed[node_id] = (under.add(label), depth + 1)
    return root


def _primary_parent(parents: Sequence[str], results: dict[str, NodeResult]) -> str:
    finished = [
        (r.completed_at, p)
        for p in parents
        if (r := results.get(p)) is not None
        and r.status == NodeStatus.SUCCEEDED
        and r.completed_at is not None
    ]
    return max(finished)[1] if finished else parents[0]


def _node_label(
    node_id: str,
    result: NodeResult | None,
    state: ExecutionState,
    join_of: Sequence[str],
    pick: int,
    *,
    data_width: int,
) -> str:
    status = result.status if result is not None else NodeStatus.PENDING
    icons = _ICONS[status]
    parts = [f"[{icons[2]}]{icons[pick]}[/] [bold]{escape(node_id)}[/]"]
    if join_of:
        parts.append(f"[dim](join of {escape(' + '.join(join_of))})[/]")
    if status != NodeStatus.SUCCEEDED:
        parts.append(f"[{icons[2]}]{status.value}[/]")
    detail = ""
    if result is not None:
        if result.started_at is not None:
            offset = (result.started_at - state.started_at).total_seconds() * 1000
            parts.append(f"[dim]at +{format_ms(max(offset, 0.0))}[/]")
        if result.duration_ms is not None:
            parts.append(f"[cyan]took {format_ms(result.duration_ms)}[/]")
        if result.attempts > 1:
            parts.append(f"[yellow]{result.attempts} attempts[/]")
        if result.next_nodes is not None:
            chosen = ", ".join(result.next_nodes) or "nothing"
            parts.append(f"[magenta]{'→' if pick == 0 else '->'} chose {escape(chosen)}[/]")
        if result.error:
            detail = f"\n[red]{escape(cut(result.error, data_width, unicode=pick == 0))}[/]"
        elif status == NodeStatus.SUCCEEDED:
            detail = f"\n[dim]{escape(abridge(result.data, data_width, unicode=pick == 0))}[/]"
    return "  ".join(parts) + detail


# The demo run ---------------------------------------------------------------------


async def run_demo(
    console: Console,
    *,
    executions: int = 1,
    concurrency: int = 10,
    show: int = 3,
    settings: SpaneSettings | None = None,
) -> bool:
    """Run the demo workflow ``executions`` times on an in-process worker and print the
    results. True when every execution completed.

    The store is the one ``settings`` configure (``SPANE_STORE``, ``DATABASE_URL``); a
    PostgreSQL schema is migrated first, as this is a throwaway run."""
    settings = settings or SpaneSettings()
    t0 = time.perf_counter()
    # A prefix of its own: never mixes with a real deployment's queue on a shared Redis.
    prefix = f"{settings.key_prefix}-demo-{secrets.token_hex(3)}"
    store = settings.make_store(apply_migrations=True)
    engine = WorkflowEngine(
        NodeRegistry(),
        **{**settings.engine_kwargs(store=False), "store": store, "key_prefix": prefix},
    )
    try:
        await store.start()  # the engine's start() finds it started
        store_ms = (time.perf_counter() - t0) * 1000
        await engine.start()
        where = (
            _redact(settings.redis_url)
            if settings.redis_url
            else "embedded redis-server, as REDIS_URL is not set"
        )
        ready = format_ms((time.perf_counter() - t0) * 1000 - store_ms)
        console.print(f"[bold]Redis[/]   {escape(where)} [dim](ready in {ready})[/]")
        if settings.store_kind == "memory":
            console.print("[bold]Store[/]   in-memory [dim](--store postgres for PostgreSQL)[/]")
        else:
            from spane_py.stores.postgres.migrate import redact

            where = (
                f"embedded server in {EMBEDDED_PG_DIR}, as DATABASE_URL is not set"
                if settings.embedded_postgres
                else redact(settings.database_url or "")
            )
            console.print(
                f"[bold]Store[/]   PostgreSQL {escape(where)}, schema {settings.db_schema!r} "
                f"[dim](ready in {format_ms(store_ms)})[/]"
            )
        console.print(f"[bold]Worker[/]  in-process, concurrency {concurrency}")
        await engine.register_workflow(demo_workflow)
        await engine.start_workers(concurrency)
        t_run = time.perf_counter()
        ids = [
            await engine.enqueue_workflow(DEMO_WORKFLOW_ID, SAMPLE_ORDERS[i % len(SAMPLE_ORDERS)])
            for i in range(executions)
        ]
        states = await asyncio.gather(*(engine.wait_for_execution(i, timeout=60.0) for i in ids))
        run_ms = (time.perf_counter() - t_run) * 1000
        definition = await engine.get_workflow(DEMO_WORKFLOW_ID)
        unicode = unicode_ok(console)
        for state in states[:show]:
            console.print()
            console.print(render_execution(state, definition, unicode=unicode, width=console.width))
        if len(states) > show:
            console.print(f"\n[dim]... {len(states) - show} more executions not shown[/]")
        ok = all(s.status == ExecutionStatus.COMPLETED for s in states)
        console.print()
        if executions > 1:
            console.print(_summary(states, run_ms))
        done = sum(s.status == ExecutionStatus.COMPLETED for s in states)
        verdict = f"{done}/{len(states)} executions completed"
        if ok:
            verdict = f"[bold green]{verdict}[/]"
        else:
            others = Counter(
                s.status.value for s in states if s.status != ExecutionStatus.COMPLETED
            )
            verdict = (
                f"[bold red]{verdict}[/] ({', '.join(f'{n} {st}' for st, n in others.items())})"
            )
        console.print(
            f"{verdict} in {format_ms(run_ms)} "
            f"[dim](total {format_ms((time.perf_counter() - t0) * 1000)} with startup)[/]"
        )
        return ok
    finally:
        await _close(engine, purge=bool(settings.redis_url))


async def _close(engine: WorkflowEngine, *, purge: bool) -> None:
    await engine.stop_workers(grace_seconds=2.0)
    if purge:  # a shared Redis keeps none of the demo's keys
        with contextlib.suppress(Exception):
            await engine.purge()
    await engine.close(grace_seconds=2.0)


def _summary(states: Sequence[ExecutionState], run_ms: float) -> str:
    counts: dict[str, int] = {}
    for s in states:
        counts[s.status.value] = counts.get(s.status.value, 0) + 1
    nodes = sum(
        1
        for s in states
        for r in s.node_results.values()
        if r.status in (NodeStatus.SUCCEEDED, NodeStatus.FAILED)
    )
    statuses = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    rate = f", {nodes / (run_ms / 1000):.0f} nodes/s" if run_ms > 0 else ""
    return f"{len(states)} executions ({statuses}): {nodes} nodes ran{rate}"


def _redact(url: str) -> str:
    """Hide a password in a URL."""
    if "@" not in url or "://" not in url:
        return url
    scheme, rest = url.split("://", 1)
    creds, host = rest.rsplit("@", 1)
    user = creds.split(":", 1)[0]
    return f"{scheme}://{user + ':***' if ':' in creds else creds}@{host}"


__all__ = [
    "DEMO_NODES",
    "DEMO_WORKFLOW_ID",
    "SAMPLE_ORDERS",
    "abridge",
    "demo_workflow",
    "format_ms",
    "render_execution",
    "run_demo",
]
