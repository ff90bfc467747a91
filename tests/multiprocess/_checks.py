"""Queries and checks shared by the multi-process tests: what the database says, and what
the executors' own record says (``tests/multiprocess/app.py``)."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import asyncpg

from tests.multiprocess.app import read_record


async def status_counts(db: asyncpg.Connection, schema: str) -> dict[str, int]:
    rows = await db.fetch(f"SELECT status, count(*) FROM {schema}.executions GROUP BY status")
    return {r[0]: r[1] for r in rows}


async def succeeded_nodes(db: asyncpg.Connection, schema: str) -> int:
    return int(
        await db.fetchval(f"SELECT count(*) FROM {schema}.node_results WHERE status = 'succeeded'")
    )


@dataclass(frozen=True)
class NodeRow:
    status: str
    attempts: int
    token: str | None  # the committed run's token (the node's output)


async def node_rows(db: asyncpg.Connection, schema: str) -> dict[tuple[str, str], NodeRow]:
    rows = await db.fetch(
        f"SELECT execution_id::text, node_id, status, attempts, output #>> '{{}}' "
        f"FROM {schema}.node_results"
    )
    return {(r[0], r[1]): NodeRow(r[2], r[3], r[4]) for r in rows}


@dataclass(frozen=True)
class Run:
    token: str
    pid: int
    attempt: int


def runs_by_node(path: str) -> dict[tuple[str, str], list[Run]]:
    """(execution_id, node_id) -> the runs the executors recorded, in order."""
    out: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for node_id, execution_id, token, pid, attempt in read_record(path):
        out[(execution_id, node_id)].append(Run(token, pid, attempt))
    return dict(out)


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
