"""Which ticks a scheduler fires (``plan_ticks``) and what the scheduler does with them, on
a fake clock: on time, late within the grace, missed (skip / run_once), several
schedulers on one store, paused schedules, deactivated workflows."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from spane_py.definitions.cron import CronSchedule
from spane_py.definitions.graph import compile_workflow
from spane_py.definitions.models import WorkflowDefinition
from spane_py.observability import events
from spane_py.stores.base import ScheduleRecord
from spane_py.stores.memory import InMemoryExecutionStore
from spane_py.triggers.scheduler import Scheduler, tick_key
from spane_py.triggers.ticks import plan_ticks

T0 = datetime(2026, 6, 1, 12, 0, 0, tzinfo=UTC)  # a whole minute
GRACE = timedelta(seconds=10)
MINUTELY = CronSchedule.parse("* * * * *")


def s(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def plan(now: datetime, last: datetime | None = None, policy: str = "skip", cron=MINUTELY):  # type: ignore[no-untyped-def]
    return plan_ticks(
        cron, last_tick=last, created_at=T0, missed_policy=policy, now=now, grace=GRACE
    )


class TestPlan:
    def test_nothing_due(self) -> None:
        p = plan(s(30))
        assert (p.fire, p.advance_to, p.next_tick) == ((), None, s(60))

    def test_a_due_tick_fires(self) -> None:
        p = plan(s(60.2))
        assert p.fire == ((s(60), False),)
        assert (p.missed, p.advance_to, p.next_tick) == (0, s(60), s(120))

    def test_a_tick_late_within_the_grace_still_fires(self) -> None:
        assert plan(s(69.9)).fire == ((s(60), False),)

    def test_ticks_missed_past_the_grace_are_skipped(self) -> None:
        p = plan(s(600 + 5))  # ticks at 60..540 late, 600 on time
        assert p.fire == ((s(600), False),)
        assert (p.missed, p.first_missed, p.advance_to) == (9, s(60), s(600))

    def test_run_once_fires_the_latest_missed_tick_once(self) -> None:
        p = plan(s(600 + 5), policy="run_once")
        assert p.fire == ((s(540), True), (s(600), False))
        assert (p.missed, p.advance_to, p.next_tick) == (8, s(600), s(660))
        # only late ticks: one catch-up
        p = plan(s(600 + 30), policy="run_once")
        assert p.fire == ((s(600), True),)
        assert p.missed == 9

    def test_it_continues_after_last_tick(self) -> None:
        assert plan(s(120.5), last=s(60)).fire == ((s(120), False),)
        assert plan(s(120.5), last=s(120)).fire == ()

    def test_a_long_outage_of_a_per_second_schedule_is_cheap(self) -> None:
        per_second = CronSchedule.parse("* * * * * *")
        p = plan(s(30 * 86400 + 0.5), policy="run_once", cron=per_second)
        assert p.fire[0] == (s(30 * 86400 - 10), True)
        assert [t for t, late in p.fire if not late] == [s(30 * 86400 - 9 + i) for i in range(10)]
        assert p.missed == 999  # counted up to 1000


# The scheduler, on the in-memory store ---------------------------------------------------
class FakeEngine:
    """Starts executions the way the engine does for the scheduler: one per idempotency key."""

    def __init__(self) -> None:
        self.by_key: dict[str, str] = {}
        self.calls: list[tuple[str, Any, str, dict[str, Any]]] = []
        self.active = True

    async def start(self, wid: str, data: Any, key: str, metadata: Mapping[str, Any]) -> str:
        self.calls.append((wid, data, key, dict(metadata)))
        await asyncio.sleep(0)  # let other schedulers read the schedule meanwhile
        return self.by_key.setdefault(key, f"exec-{len(self.by_key)}")

    async def is_active(self, wid: str) -> bool:
        return self.active


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
async def store() -> InMemoryExecutionStore:
    store = InMemoryExecutionStore()
    definition = WorkflowDefinition.model_validate(
        {"id": "wf", "nodes": [{"id": "a", "type": "t"}]}
    )
    graph = compile_workflow(definition)
    await store.save_workflow(graph.definition, content_hash=graph.content_hash, change_notes=None)
    record = ScheduleRecord("wf:s", "wf", "* * * * *", "UTC", created_at=T0)
    await store.sync_triggers("wf", [record], [])
    return store


def scheduler(store: InMemoryExecutionStore, engine: FakeEngine, clock: Clock) -> Scheduler:
    return Scheduler(
        store, engine.start, engine.is_active, grace_seconds=10, refresh_seconds=5, clock=clock
    )


async def test_a_round_fires_the_due_tick_and_sleeps_until_the_next(
    store: InMemoryExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    engine, clock = FakeEngine(), Clock(s(59))
    sched = scheduler(store, engine, clock)
    assert await sched.run_once() == pytest.approx(1.002)  # until 12:01:00
    assert engine.calls == []
    clock.now = s(60.01)
    caplog.set_level(logging.INFO, logger="spane_py.events")
    assert await sched.run_once() == pytest.approx(5.002)  # refresh: the next tick is 60 s away
    assert engine.calls == [
        (
            "wf",
            {"schedule_id": "wf:s", "tick": "2026-06-01T12:01:00+00:00"},
            "schedule:wf:s:2026-06-01T12:01:00+00:00",
            {"trigger": "schedule", "schedule_id": "wf:s", "tick": "2026-06-01T12:01:00+00:00"},
        )
    ]
    record = await store.get_schedule("wf:s")
    assert record is not None
    assert record.last_tick == s(60)
    fired = [r for r in caplog.records if getattr(r, "event", None) == events.SCHEDULE_TICK_FIRED]
    assert len(fired) == 1
    assert fired[0].spane_fields["execution_id"] == "exec-0"  # type: ignore[attr-defined]


async def test_three_schedulers_one_execution_per_tick_one_event(
    store: InMemoryExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    """Every process runs a scheduler: they all start the tick with its key, so one
    execution exists per tick, and the compare-and-set lets one of them report it."""
    engine, clock = FakeEngine(), Clock(s(60.1))
    schedulers = [scheduler(store, engine, clock) for _ in range(3)]
    caplog.set_level(logging.INFO, logger="spane_py.events")
    for minute in range(1, 6):
        clock.now = s(60 * minute + 0.1)
        # all read the schedule before any of them writes (the worst interleaving)
        await asyncio.gather(*(sched.run_once() for sched in schedulers))
    keys = [key for _, _, key, _ in engine.calls]
    assert len(keys) == 15  # each scheduler started each tick...
    assert len(engine.by_key) == 5  # ... and one execution per tick exists
    assert set(keys) == {tick_key("wf:s", s(60 * m)) for m in range(1, 6)}
    fired = [r for r in caplog.records if getattr(r, "event", None) == events.SCHEDULE_TICK_FIRED]
    assert len(fired) == 5


async def test_workers_back_after_an_outage_follow_the_missed_policy(
    store: InMemoryExecutionStore, caplog: pytest.LogCaptureFixture
) -> None:
    engine, clock = FakeEngine(), Clock(s(60.1))
    sched = scheduler(store, engine, clock)
    await sched.run_once()  # 12:01 fired
    clock.now = s(60 * 10 + 30)  # down from 12:01 to 12:10:30
    caplog.set_level(logging.INFO, logger="spane_py.events")
    await sched.run_once()
    assert len(engine.calls) == 1  # skip: nothing more
    missed = [r for r in caplog.records if getattr(r, "event", None) == events.SCHEDULE_TICK_MISSED]
    assert missed[0].spane_fields["count"] == 9  # type: ignore[attr-defined]

    # run_once: one catch-up for all the missed ticks, marked late
    await store.sync_triggers(
        "wf",
        [ScheduleRecord("wf:s", "wf", "* * * * *", "UTC", created_at=T0, missed="run_once")],
        [],
    )
    clock.now = s(60 * 20 + 30)
    await sched.run_once()
    assert len(engine.calls) == 2
    _, _, key, metadata = engine.calls[-1]
    assert key == tick_key("wf:s", s(60 * 20))
    assert metadata["late"] is True


async def test_paused_schedules_and_deactivated_workflows_do_not_fire(
    store: InMemoryExecutionStore,
) -> None:
    engine, clock = FakeEngine(), Clock(s(60.1))
    sched = scheduler(store, engine, clock)
    await store.set_schedule_paused("wf:s", True)
    assert await sched.run_once() == pytest.approx(5.002)
    assert engine.calls == []
    await store.set_schedule_paused("wf:s", False, skip_until=s(60.1))
    engine.active = False  # the workflow was deactivated
    clock.now = s(120.1)
    await sched.run_once()
    assert engine.calls == []
    record = await store.get_schedule("wf:s")
    assert record is not None
    assert record.last_tick == s(120)  # passed by: not caught up on reactivation
    engine.active = True
    clock.now = s(180.1)
    await sched.run_once()
    assert [key for _, _, key, _ in engine.calls] == [tick_key("wf:s", s(180))]


async def test_a_failed_start_is_retried_next_round(store: InMemoryExecutionStore) -> None:
    engine, clock = FakeEngine(), Clock(s(60.1))
    failing = True

    async def start(wid: str, data: Any, key: str, metadata: Mapping[str, Any]) -> str:
        if failing:
            raise ConnectionError("redis is down")
        return await engine.start(wid, data, key, metadata)

    sched = Scheduler(
        store, start, engine.is_active, grace_seconds=10, refresh_seconds=5, clock=clock
    )
    await sched.run_once()  # logged, not raised; last_tick stays
    record = await store.get_schedule("wf:s")
    assert record is not None
    assert record.last_tick is None
    failing = False
    clock.now = s(62)
    await sched.run_once()
    assert [key for _, _, key, _ in engine.calls] == [tick_key("wf:s", s(60))]
