"""The scheduler every worker runs as a side task, and the schedule operations of the engine.

Each worker process runs its own scheduler on the schedules in the store; nothing elects a
leader. A tick starts exactly one execution however many run it, because its execution is
started with an idempotency key derived from the schedule and the tick time
(``schedule:<schedule_id>:<tick>``): whoever gets there first creates it, the others find
it. ``last_tick`` then moves forward by compare-and-set, so one process reports the tick.

A round reads the schedules (one query), fires what is due (``ticks.plan_ticks``) and
returns how long to sleep: until the next tick, or ``refresh`` seconds at most, to notice
schedules that other processes registered. With no schedules a round is that one query.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from spane_py.definitions.cron import CronSchedule
from spane_py.errors import ScheduleNotFoundError
from spane_py.observability import events
from spane_py.records import ScheduleRecord
from spane_py.stores.base import ExecutionStore
from spane_py.triggers.ticks import TickPlan, plan_ticks

logger = logging.getLogger("spane_py.scheduler")

# (workflow_id, initial_data, idempotency_key, metadata) -> execution id
StartExecution = Callable[[str, Any, str, Mapping[str, Any]], Awaitable[str]]
IsActive = Callable[[str], Awaitable[bool]]
WAKE_SLACK_S = 0.002  # sleep a hair past the tick: a timer may fire a little early


@dataclass(frozen=True, slots=True)
class ScheduleInfo:
    """A schedule as ``engine.list_schedules()`` shows it. ``next_tick`` is None while it
    is paused."""

    schedule_id: str
    workflow_id: str
    cron: str
    timezone: str
    missed: str
    paused: bool
    last_tick: datetime | None
    created_at: datetime
    next_tick: datetime | None


def tick_key(schedule_id: str, tick: datetime) -> str:
    """The idempotency key of a tick's execution: the same in every process."""
    return f"schedule:{schedule_id}:{tick.astimezone(UTC).isoformat()}"


class Scheduler:
    def __init__(
        self,
        store: ExecutionStore,
        start: StartExecution,
        is_active: IsActive,
        *,
        grace_seconds: float,
        refresh_seconds: float,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store = store
        self._start = start
        self._is_active = is_active
        self.grace = timedelta(seconds=grace_seconds)
        self.refresh_seconds = refresh_seconds
        self._clock = clock
        self._crons: dict[tuple[str, str], CronSchedule | None] = {}

    async def run_once(self) -> float:
        """Fire what is due; seconds until the next round."""
        now = self._clock()
        wake_at = now + timedelta(seconds=self.refresh_seconds)
        for record in await self.store.list_schedules():
            cron = None if record.paused else self._cron(record)
            if cron is None:
                continue
            try:
                plan = plan_ticks(
                    cron,
                    last_tick=record.last_tick,
                    created_at=record.created_at,
                    missed_policy=record.missed,
                    now=now,
                    grace=self.grace,
                )
                if plan.advance_to is not None:
                    await self._handle(record, plan)
            except Exception:  # one schedule's trouble must not stop the others
                logger.exception("schedule %s: firing its ticks failed", record.schedule_id)
                continue
            if plan.next_tick is not None:
                wake_at = min(wake_at, plan.next_tick)
        return max((wake_at - self._clock()).total_seconds(), 0.0) + WAKE_SLACK_S

    def _cron(self, record: ScheduleRecord) -> CronSchedule | None:
        key = (record.cron, record.timezone)
        if key not in self._crons:
            try:
                self._crons[key] = CronSchedule.parse(record.cron, record.timezone)
            except ValueError as exc:  # saved by a version that checked less: say it once
                logger.error("schedule %s is not run: %s", record.schedule_id, exc)
                self._crons[key] = None
        return self._crons[key]

    async def _handle(self, record: ScheduleRecord, plan: TickPlan) -> None:
        assert plan.advance_to is not None
        active = await self._is_active(record.workflow_id)
        started: list[tuple[datetime, bool, str]] = []
        if active:  # a deactivated workflow's ticks pass by, never to be caught up
            for tick, late in plan.fire:
                started.append((tick, late, await self._fire(record, tick, late)))
        won = await self.store.advance_schedule(
            record.schedule_id, record.last_tick, plan.advance_to
        )
        if not won:
            return  # another process dealt with these ticks too, and reports them
        for tick, late, execution_id in started:
            events.emit(
                events.SCHEDULE_TICK_FIRED,
                schedule_id=record.schedule_id,
                workflow_id=record.workflow_id,
                tick=tick.isoformat(),
                execution_id=execution_id,
                late=late or None,
            )
        passed = plan.missed + (0 if active else len(plan.fire))
        if passed:
            events.emit(
                events.SCHEDULE_TICK_MISSED,
                logging.WARNING,
                schedule_id=record.schedule_id,
                workflow_id=record.workflow_id,
                count=passed,
                first=(plan.first_missed or plan.fire[0][0]).isoformat(),
                policy=record.missed if active else "workflow inactive",
            )

    async def _fire(self, record: ScheduleRecord, tick: datetime, late: bool) -> str:
        when = tick.astimezone(UTC).isoformat()
        data = {"schedule_id": record.schedule_id, "tick": when}
        metadata: dict[str, Any] = {"trigger": "schedule", **data}
        if late:
            metadata["late"] = True
        return await self._start(
            record.workflow_id, data, tick_key(record.schedule_id, tick), metadata
        )


# The engine's schedule operations ------------------------------------------------------
async def list_schedules(store: ExecutionStore, workflow_id: str | None) -> list[ScheduleInfo]:
    now = datetime.now(UTC)
    out = []
    for r in await store.list_schedules(workflow_id):
        next_tick = None
        if not r.paused:
            try:
                cron = CronSchedule.parse(r.cron, r.timezone)
                next_tick = cron.next_after(max(now, r.last_tick or r.created_at))
            except ValueError:
                pass
        out.append(
            ScheduleInfo(
                r.schedule_id,
                r.workflow_id,
                r.cron,
                r.timezone,
                r.missed,
                r.paused,
                r.last_tick,
                r.created_at,
                next_tick,
            )
        )
    return out


async def set_paused(store: ExecutionStore, schedule_id: str, paused: bool) -> bool:
    """Pause or resume; False when it already was. Ticks that pass while a schedule is
    paused are not caught up when it resumes, whatever its missed policy."""
    now = datetime.now(UTC)
    changed = await store.set_schedule_paused(
        schedule_id, paused, skip_until=None if paused else now
    )
    if not changed:
        await _existing(store, schedule_id)
        return False
    record = await store.get_schedule(schedule_id)
    events.emit(
        events.SCHEDULE_PAUSED if paused else events.SCHEDULE_RESUMED,
        schedule_id=schedule_id,
        workflow_id=record.workflow_id if record else None,
    )
    return True


async def remove(store: ExecutionStore, schedule_id: str) -> None:
    record = await _existing(store, schedule_id)
    await store.delete_schedule(schedule_id)
    events.emit(events.SCHEDULE_REMOVED, schedule_id=schedule_id, workflow_id=record.workflow_id)


async def _existing(store: ExecutionStore, schedule_id: str) -> ScheduleRecord:
    record = await store.get_schedule(schedule_id)
    if record is None:
        raise ScheduleNotFoundError(
            f"no schedule has the id {schedule_id!r} (engine.list_schedules() lists them)",
            details={"schedule_id": schedule_id},
        )
    return record
