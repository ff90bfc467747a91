"""What the chaos tests check, from the executors' record (``tests/chaos/app.py``) and the
store's audit (``conftest.Audit``)."""

from __future__ import annotations

import asyncio
import itertools
import statistics
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

import asyncpg

from tests.chaos.app import Event, read_events

Key = tuple[str, str]  # (execution_id, node_id)


@dataclass
class RunSpan:
    """One run of one node: from its ``start`` line to its ``end`` line (None: cut off)."""

    token: str
    pid: int
    attempt: int
    start: float
    end: float | None


def runs_by_node(path: str) -> dict[Key, list[RunSpan]]:
    """(execution_id, node_id) -> its runs, by start time."""
    runs: dict[Key, list[RunSpan]] = {}
    by_token: dict[str, RunSpan] = {}
    for e in read_events(path):
        if e.event == "start":
            span = RunSpan(e.token, e.pid, e.attempt, e.at, None)
            by_token[e.token] = span
            runs.setdefault((e.execution_id, e.node_id), []).append(span)
        else:
            by_token[e.token].end = e.at
    for spans in runs.values():
        spans.sort(key=lambda s: s.start)
    return runs


def starts_of(path: str, execution_id: str) -> list[Event]:
    return [e for e in read_events(path) if e.event == "start" and e.execution_id == execution_id]


def overlapping_runs(
    runs: dict[Key, list[RunSpan]], killed_at: dict[int, float]
) -> list[tuple[Key, RunSpan, RunSpan]]:
    """Pairs of runs of one node that were under way at the same time. A run cut off ends
    when its worker was killed (``killed_at``: pid -> kill time); one cut off by a worker
    that was not killed never ends (it is reported with any later run)."""
    found = []
    for key, spans in runs.items():
        for earlier, later in itertools.pairwise(spans):
            ended = earlier.end if earlier.end is not None else killed_at.get(earlier.pid)
            if ended is None or later.start < ended:
                found.append((key, earlier, later))
    return found


@dataclass(frozen=True)
class StoreNode:
    status: str
    token: str | None
    completed_at: float | None


async def store_nodes(db: asyncpg.Connection, schema: str) -> dict[Key, StoreNode]:
    rows = await db.fetch(
        f"SELECT execution_id::text, node_id, status, output #>> '{{}}', "
        f"extract(epoch FROM completed_at)::float8 FROM {schema}.node_results"
    )
    return {(r[0], r[1]): StoreNode(r[2], r[3], r[4]) for r in rows}


async def status_counts(db: asyncpg.Connection, schema: str) -> dict[str, int]:
    rows = await db.fetch(f"SELECT status, count(*) FROM {schema}.executions GROUP BY status")
    return {r[0]: r[1] for r in rows}


async def succeeded_nodes(db: asyncpg.Connection, schema: str) -> int:
    return int(
        await db.fetchval(f"SELECT count(*) FROM {schema}.node_results WHERE status = 'succeeded'")
    )


async def wait_until(
    check: Callable[[], Awaitable[bool]], *, timeout: float, what: str, every: float = 0.1
) -> float:
    """Poll ``check`` until it holds; returns the seconds it took."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{what}: not reached after {timeout} s")
        await asyncio.sleep(every)
    return time.monotonic() - started


def committed_once(
    runs: dict[Key, list[RunSpan]],
    nodes: dict[Key, StoreNode],
    applied: dict[Key, list[str]],
) -> list[str]:
    """Problems with "every node's result recorded once": each node succeeded, with the
    token of one of its recorded runs, written as succeeded exactly once (the audit)."""
    problems = []
    if set(runs) != set(nodes):
        problems.append(
            f"nodes run but not in the store: {sorted(set(runs) - set(nodes))[:3]}; "
            f"in the store but never run: {sorted(set(nodes) - set(runs))[:3]}"
        )
    for key, node in nodes.items():
        if node.status != "succeeded":
            problems.append(f"{key}: {node.status}")
            continue
        tokens = [r.token for r in runs.get(key, [])]
        if node.token not in tokens:
            problems.append(f"{key}: the store kept {node.token}, not a recorded run {tokens}")
        if applied.get(key) != [node.token]:
            problems.append(f"{key}: written as succeeded {applied.get(key)}, not once")
    return problems


def summary(values: Iterable[float]) -> tuple[float, float]:
    """(median, max)."""
    found = list(values)
    return statistics.median(found), max(found)
