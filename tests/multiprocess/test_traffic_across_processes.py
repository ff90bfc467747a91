"""Rate limits and circuit breakers across OS processes: three ``spane worker`` processes
share one rate limit and one breaker through Redis (tests/multiprocess/app.py:
``mp_limited`` at 10 calls per second, ``mp_service`` behind a breaker of 3 failures in 10 s,
open 1 s, one half-open probe).

Call times are the executors' own ``time.time()`` readings, recorded in their tokens. The
limiter admits on the Redis clock; the executor reads its clock a moment later, by an amount
that varies between calls: a fraction of a ms on a quiet machine, and up to a few hundred ms
when other work keeps both cores busy (a worker process waits for a core between the
admission and the call). So the window check allows ``JITTER`` of that delay, and a single
second may count a call or two more or less than 10 (one admitted at the end of the second
before, called in this one); the rate over the whole run is held to 9-11 per second.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import pytest

from spane_py import WorkflowEngine
from spane_py.state import ExecutionStatus
from tests.multiprocess._checks import node_rows, runs_by_node, wait_until
from tests.multiprocess.app import RATE_LIMIT
from tests.multiprocess.conftest import Workers

pytestmark = [pytest.mark.slow]

JITTER = 0.3
# The breaker's times are whole milliseconds of the Redis clock (floored).
MS = 0.001
# Calls admitted just before the breaker opened may reach their executor just after.
UNDER_WAY = 0.1


def workflow(workflow_id: str, node: dict[str, Any]) -> dict[str, Any]:
    return {"id": workflow_id, "name": workflow_id, "nodes": [node]}


@dataclass(frozen=True)
class Call:
    at: float  # time.time() in the executor
    execution_id: str
    pid: int
    attempt: int


def calls(record: Path) -> list[Call]:
    out = [
        Call(float(run.token.rsplit("@", 1)[1]), eid, run.pid, run.attempt)
        for (eid, _), runs in runs_by_node(str(record)).items()
        for run in runs
    ]
    return sorted(out, key=lambda c: c.at)


def most_in_window(times: list[float], window: float) -> int:
    best, lo = 0, 0
    for hi, t in enumerate(times):
        while t - times[lo] >= window:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


async def all_completed(producer: WorkflowEngine, ids: list[str], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    for eid in ids:
        state = await producer.wait_for_execution(eid, timeout=deadline - time.monotonic())
        assert state.status is ExecutionStatus.COMPLETED, (eid, state.status, state.error)


async def test_a_rate_limit_of_10_per_second_holds_across_3_worker_processes(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    nodes = 70
    started = workers.start(3, concurrency=20)
    await producer.register_workflow(workflow("mp-limited", {"id": "call", "type": "mp_limited"}))
    await workers.wait_ready(started)
    ids = await producer.enqueue_bulk("mp-limited", list(range(nodes)))
    await all_completed(producer, ids, timeout=30)

    seen = calls(record_path)
    times = [c.at for c in seen]
    assert len(times) == nodes  # one call per node: a deferral is no call
    assert {c.pid for c in seen} == {w.pid for w in started}  # shared by the 3 processes
    per = RATE_LIMIT.per_seconds
    assert RATE_LIMIT.max_calls == 10
    # Never more than 10 calls in any 1-second window.
    assert most_in_window(times, per - JITTER) <= 10
    # The rate: after the first burst of 10, the calls of each full second, and overall.
    t0, t_end = times[0], times[-1]
    steady = [t for t in times if t >= t0 + per]
    rate = (len(steady) - 1) / (steady[-1] - steady[0])
    seconds = [sum(1 for t in times if t0 + k <= t < t0 + k + 1) for k in range(1, int(t_end - t0))]
    closest = min(b - a for a, b in zip(times, times[10:], strict=False))
    print(
        f"\n{nodes} nodes limited to 10/s on 3 worker processes: first burst "
        f"{len(times) - len(steady)} calls, then {rate:.2f} calls/s; per second {seconds}; "
        f"at most {most_in_window(times, per)} calls in any 1 s window (11 calls span at "
        f"least {closest:.4f} s); {t_end - t0:.2f} s in all"
    )
    assert 9.0 <= rate <= 11.0, rate
    assert all(8 <= n <= 12 for n in seconds), seconds
    # Deferred nodes counted no attempt.
    rows = await node_rows(db, pg_schema)
    assert {(r.status, r.attempts) for r in rows.values()} == {("succeeded", 1)}
    assert not workers.errors(), workers.errors()[:10]


@dataclass(frozen=True)
class Opening:
    opened_at: float  # time.time() of the Redis clock
    open_until: float


async def test_a_breaker_opens_stops_calls_half_opens_and_closes_across_processes(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
    tmp_path: Path,
) -> None:
    down = tmp_path / "service-down"
    down.touch()
    nodes = 12
    started = workers.start(3, concurrency=10)
    await producer.register_workflow(
        workflow(
            "mp-breaker",
            {
                "id": "call",
                "type": "mp_service",
                "config": {"failWhile": str(down)},
                "retryPolicy": {"maxAttempts": 20, "backoff": {"type": "fixed", "delay": 100}},
            },
        )
    )
    await workers.wait_ready(started)
    ids = await producer.enqueue_bulk("mp-breaker", list(range(nodes)))

    # Watch the breaker (its state is in Redis, shared): every opening, and when it closed.
    openings: dict[float, Opening] = {}
    closed_seen: list[float] = []

    async def watch() -> None:
        while True:
            state = await producer.breaker_state("mp_service")
            if state.opened_at is not None and state.open_until is not None:
                key = state.opened_at.timestamp()
                openings[key] = Opening(key, state.open_until.timestamp())
            if state.state == "closed" and openings and down.exists() is False:
                closed_seen.append(time.time())
                return
            await asyncio.sleep(0.02)

    watcher = asyncio.create_task(watch())
    try:
        # The first opening, then two probes that fail and open it again.
        await wait_until(_at_least(openings, 3), timeout=15, what="3 openings", every=0.02)
        down.unlink()  # the service is back: the next probe succeeds and closes it
        removed_at = time.time()
        await asyncio.wait_for(watcher, timeout=10)
    finally:
        watcher.cancel()
    await all_completed(producer, ids, timeout=15)

    seen = calls(record_path)
    opens = sorted(openings.values(), key=lambda o: o.opened_at)
    first = opens[0]
    before = [c for c in seen if c.at < first.opened_at + MS]
    assert len(before) >= 3  # the failures that opened it (up to all 12 nodes at once)
    # While open, no calls — apart from those already under way when it opened.
    for o in opens:
        assert o.open_until - o.opened_at == pytest.approx(1.0, abs=0.01)
        during = [c for c in seen if o.opened_at + UNDER_WAY < c.at < o.open_until]
        assert during == [], (o, during)
    # Half-open: exactly one probe between the end of an opening and the next opening.
    for o, nxt in itertools.pairwise(opens):
        probes = [c for c in seen if o.open_until <= c.at < nxt.opened_at + MS]
        assert len(probes) == 1, (o, nxt, probes)
    # The flag was removed during the last opening: its probe closed the breaker, then
    # the remaining nodes ran.
    last = opens[-1]
    assert removed_at < last.open_until
    after = [c for c in seen if c.at >= last.open_until]
    assert len(after) == nodes  # the probe that closed it, and every other node once
    assert closed_seen
    late = [c for c in seen if first.opened_at + MS <= c.at < first.open_until]
    print(
        f"\nbreaker: {len(before)} calls before it opened and {len(late)} under way then "
        f"(at most {max((c.at - first.opened_at for c in late), default=0) * 1000:.1f} ms "
        f"after); {len(opens)} openings, {len(seen) - len(before) - len(late) - len(after)} "
        f"failed probes; {len(after)} calls after the last opening; closed within "
        f"{closed_seen[0] - last.open_until:.2f} s of it"
    )
    # Waiting on the breaker counted no attempt: each attempt is one recorded call.
    rows = await node_rows(db, pg_schema)
    runs = runs_by_node(str(record_path))
    assert {r.status for r in rows.values()} == {"succeeded"}
    assert all(row.attempts == len(runs[key]) for key, row in rows.items())
    assert not workers.errors(), workers.errors()[:10]


def _at_least(openings: dict[float, Opening], n: int) -> Any:
    async def check() -> bool:
        return len(openings) >= n

    return check
