"""A per-second schedule on three ``spane worker`` processes sharing one PostgreSQL and one
Redis: every worker runs a scheduler, yet each tick starts exactly one execution and no
tick is skipped — also across a restart of every worker (ticks that came due while none
ran, within the grace, are fired when they come back). Webhooks signed and unsigned,
triggered from the test process, run on the workers.

The workers register no workflow: the schedule and the webhook bindings come from
PostgreSQL. Each node run is also checked against the executors' own record file.
"""

from __future__ import annotations

import asyncio
import itertools
import signal
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from spane_py import WorkflowEngine
from spane_py.errors import WebhookSignatureError
from spane_py.triggers.webhooks import sign
from tests.multiprocess._checks import runs_by_node, status_counts, wait_until
from tests.multiprocess.conftest import Workers

pytestmark = pytest.mark.slow

TICKER = {
    "id": "mp-ticker",
    "nodes": [{"id": "echo", "type": "mp_echo"}],
    "triggers": [{"type": "schedule", "config": {"cron": "* * * * * *"}}],
}
HOOKED = {
    "id": "mp-hooked",
    "nodes": [{"id": "echo", "type": "mp_echo"}],
    "triggers": [{"type": "webhook", "config": {"path": "/mp/signed", "secret": "k"}}],
}


async def executions_per_tick(db: asyncpg.Connection, schema: str) -> Counter[datetime]:
    rows = await db.fetch(
        f"SELECT metadata ->> 'tick' FROM {schema}.executions WHERE workflow_id = 'mp-ticker'"
    )
    return Counter(datetime.fromisoformat(r[0]) for r in rows)


async def test_per_second_schedule_fires_once_per_tick_on_three_workers(
    workers: Workers,
    producer: WorkflowEngine,
    db: asyncpg.Connection,
    pg_schema: str,
    record_path: Path,
) -> None:
    await producer.register_workflow(TICKER)
    # INFO: the workers log the ticks they report (few nodes run here: logging is cheap)
    # A grace longer than any restart of the workers: none of the ticks may be missed.
    env = {"SPANE_LOG_LEVEL": "INFO", "MP_SCHEDULE_GRACE": "60"}
    first = workers.start(3, concurrency=10, **env)
    await workers.wait_ready(first)
    await asyncio.sleep(3.0)

    # Every worker stops (gracefully); the schedule keeps its place in the store.
    workers.signal(first, signal.SIGTERM)
    assert await workers.wait_exit(first) == [0, 0, 0]
    down_at = time.monotonic()
    await asyncio.sleep(0.5)
    second = workers.start(3, concurrency=10, **env)
    await workers.wait_ready(second)
    down_for = time.monotonic() - down_at
    await asyncio.sleep(2.5)

    [schedule] = await producer.list_schedules("mp-ticker")
    assert await producer.pause_schedule(schedule.schedule_id)

    # A scheduler round that read the schedule before the pause may still fire a tick
    # (later on a busy machine): wait for a state where every execution in the store has
    # completed, ran once in the executors' record and was reported in a worker's log.
    snapshot: dict[str, object] = {}

    async def consistent() -> bool:
        if set(await status_counts(db, pg_schema)) != {"completed"}:
            return False
        counts = await executions_per_tick(db, pg_schema)
        runs = runs_by_node(str(record_path))
        reported = {w.pid: w.log.read_text().count("schedule.tick_fired") for w in workers.started}
        total = sum(counts.values())
        snapshot.update(counts=counts, runs=runs, reported=reported)
        return len(runs) == total and sum(reported.values()) == total

    try:
        await wait_until(consistent, timeout=60, what="every scheduled execution completed")
    except AssertionError as exc:  # say which part of the state disagreed
        statuses = await status_counts(db, pg_schema)
        raise AssertionError(f"{exc}; statuses {statuses}, last look {snapshot}") from None
    counts = snapshot["counts"]
    runs = snapshot["runs"]
    reported = snapshot["reported"]
    assert isinstance(counts, Counter)
    assert isinstance(runs, dict)
    assert isinstance(reported, dict)
    ticks = sorted(counts)
    print(
        f"\n{len(ticks)} ticks over {(ticks[-1] - ticks[0]).total_seconds():.0f} s on 3+3 "
        f"worker processes (all down for {down_for:.1f} s): executions per tick "
        f"{sorted(Counter(counts.values()).items())}"
    )
    assert set(counts.values()) == {1}, counts  # exactly one execution per tick
    assert ticks == [ticks[0] + timedelta(seconds=i) for i in range(len(ticks))]  # no gap
    assert len(ticks) >= 6
    # ... and each execution's node ran once (the executors' own record)
    assert {len(r) for r in runs.values()} == {1}
    assert workers.errors() == []
    # Every tick was reported by exactly one process (the sum equals the ticks: checked in
    # `consistent`).
    print(f"ticks reported per worker process: {sorted(reported.values())}")


async def test_ticks_missed_while_every_worker_was_down_run_once(
    workers: Workers, producer: WorkflowEngine, db: asyncpg.Connection, pg_schema: str
) -> None:
    """With a 1 s grace, the ticks of an outage of every worker are missed: the run_once
    policy fires one late execution for all of them, once, though three workers return."""
    ticker = {
        **TICKER,
        "triggers": [{"type": "schedule", "cron": "* * * * * *", "missed": "run_once"}],
    }
    await producer.register_workflow(ticker)
    env = {"MP_SCHEDULE_GRACE": "1"}
    first = workers.start(3, concurrency=10, **env)
    await workers.wait_ready(first)
    await asyncio.sleep(2.0)
    workers.signal(first, signal.SIGTERM)
    await workers.wait_exit(first)
    await asyncio.sleep(2.5)  # with the restart: well over the grace
    second = workers.start(3, concurrency=10, **env)
    await workers.wait_ready(second)
    await asyncio.sleep(2.0)
    [schedule] = await producer.list_schedules("mp-ticker")
    await producer.pause_schedule(schedule.schedule_id)
    # A round that read the schedule before the pause may still fire a tick: the workers
    # stop (their schedulers with them) before the store is read.
    workers.signal(second, signal.SIGTERM)
    await workers.wait_exit(second)

    counts = await executions_per_tick(db, pg_schema)
    assert set(counts.values()) == {1}, counts
    rows = await db.fetch(
        f"SELECT (metadata ->> 'tick')::timestamptz FROM {pg_schema}.executions "
        "WHERE metadata ->> 'late' = 'true' ORDER BY 1"
    )
    lates = [r[0] for r in rows]
    ticks = sorted(counts)
    gaps = [(a, b) for a, b in itertools.pairwise(ticks) if b - a > timedelta(seconds=1)]
    print(f"\ncatch-up runs {[f'{t:%H:%M:%S}' for t in lates]}, gaps {gaps}")
    # The outage is one gap, ended by a catch-up run standing for the ticks it skipped;
    # then one execution per second again. (When the workers take over a second to start,
    # the ticks between the registration and their start get a catch-up too: the first.)
    # A worker that read the schedule just before another advanced it may flag the tick
    # after a catch-up late as well: still one execution for it.
    # On a busy machine a round may come later than the 1 s grace after a tick while the
    # workers run, too: that is another gap, ended by its own catch-up run in the same way.
    assert max(b - a for a, b in gaps) >= timedelta(seconds=2)  # the outage
    assert all(gap_end in lates for _, gap_end in gaps)
    allowed = timedelta(seconds=2)
    starts = [ticks[0], *(gap_end for _, gap_end in gaps)]
    assert all(any(s <= t <= s + allowed for s in starts) for t in lates)


async def test_webhooks_on_worker_processes(
    workers: Workers, producer: WorkflowEngine, db: asyncpg.Connection, pg_schema: str
) -> None:
    started = workers.start(2, concurrency=10)
    await producer.register_workflow(HOOKED)
    await workers.wait_ready(started)
    body = b'{"n": 1}'
    [eid] = await producer.trigger_webhook(
        "mp/signed", "POST", body, {"X-Spane-Signature": sign("k", body)}
    )
    state = await producer.wait_for_execution(eid, timeout=20)
    assert state.status == "completed"
    assert state.node_results["echo"].data["input"] == {"n": 1}
    with pytest.raises(WebhookSignatureError):
        await producer.trigger_webhook(
            "mp/signed", "POST", body, {"X-Spane-Signature": sign("x", body)}
        )
    assert await status_counts(db, pg_schema) == {"completed": 1}
