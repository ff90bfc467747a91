"""A limit of one execution per customer across three ``spane worker`` processes on one
PostgreSQL: admission happens in whichever process settles an execution, and two executions
of one customer never overlap, while the other customers' run meanwhile.

Starts and ends come from the executors' own record (tests/multiprocess/app.py), whose
lines are appended in the order they happened, across processes: an execution starts when
its ``start`` node (``mp_gate``) records, and ends when its ``finish`` node (``mp_branch``,
after a random sleep) records. The checks are on that order, not on times.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import asyncpg
import pytest

from spane_py import WorkflowEngine
from spane_py.state import ExecutionStatus
from tests.multiprocess._checks import wait_until
from tests.multiprocess.app import read_record
from tests.multiprocess.conftest import Workers

pytestmark = [pytest.mark.slow]

HELD = "A"
OTHERS = ("B", "C", "D")
EACH = 6  # executions per customer


def keyed(hold_dir: Path) -> dict[str, object]:
    return {
        "id": "mp-keyed",
        "name": "mp-keyed",
        "concurrency": {"key": "input.customer", "max": 1},
        "nodes": [
            {"id": "start", "type": "mp_gate", "config": {"holdDir": str(hold_dir)},
             "outputs": ["finish"]},
            {"id": "finish", "type": "mp_branch"},
        ],
    }  # fmt: skip


def events(record: Path) -> list[tuple[str, str]]:
    """(node_id, execution_id) of every run, in the order they were recorded."""
    return [(node_id, eid) for node_id, eid, _, _, _ in read_record(str(record))]


async def test_one_execution_per_customer_across_three_worker_processes(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    tmp_path: Path,
) -> None:
    started = workers.start(3, MP_SLEEP_MS="5,30")
    hold_dir = tmp_path / "held"
    hold_dir.mkdir()
    (hold_dir / HELD).touch()
    await producer.register_workflow(keyed(hold_dir))
    await workers.wait_ready(started)

    customer: dict[str, str] = {}
    held = await producer.enqueue_bulk("mp-keyed", [{"customer": HELD, "n": i} for i in range(4)])
    customer.update(dict.fromkeys(held, HELD))

    async def first_is_held() -> bool:
        return ("start", held[0]) in events(record_path)

    await wait_until(first_is_held, timeout=30, what=f"{HELD}'s first execution to start")
    inputs = [{"customer": c, "n": i} for i, c in itertools.product(range(EACH), OTHERS)]
    others = await producer.enqueue_bulk("mp-keyed", inputs)
    customer.update({eid: item["customer"] for eid, item in zip(others, inputs, strict=True)})

    for eid in others:
        state = await producer.wait_for_execution(eid, timeout=60)
        assert state.status is ExecutionStatus.COMPLETED, (eid, state.status, state.error)
    # All the while, A's first held its slot and the rest of A waited.
    rows = await db.fetch(
        f"SELECT execution_id::text, status FROM {pg_schema}.executions WHERE concurrency_key = $1",
        f'"{HELD}"',
    )
    assert {r["execution_id"]: r["status"] for r in rows} == {
        held[0]: "running",
        **dict.fromkeys(held[1:], "queued"),
    }

    (hold_dir / HELD).unlink()
    for eid in held:
        state = await producer.wait_for_execution(eid, timeout=60)
        assert state.status is ExecutionStatus.COMPLETED, (eid, state.status, state.error)

    seen = events(record_path)
    assert sorted(seen) == sorted(
        (node_id, eid) for eid in customer for node_id in ("start", "finish")
    )  # each node ran once
    running: dict[str, str | None] = dict.fromkeys((HELD, *OTHERS))
    order: dict[str, list[str]] = {c: [] for c in running}
    for node_id, eid in seen:
        who = customer[eid]
        if node_id == "start":
            assert running[who] is None, f"{eid} started while {running[who]} of {who} ran"
            running[who] = eid
            order[who].append(eid)
        else:
            assert running[who] == eid
            running[who] = None
    # First in, first admitted, per customer.
    assert order[HELD] == held
    for c in OTHERS:
        assert order[c] == [eid for eid in others if customer[eid] == c]
    # The other customers ran from start to end while A's first was held.
    first_start = seen.index(("start", held[0]))
    first_end = seen.index(("finish", held[0]))
    assert all(first_start < i < first_end for i, (_, eid) in enumerate(seen) if eid in others)
    assert workers.errors() == []
