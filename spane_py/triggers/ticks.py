"""Which ticks of a schedule to fire now, and which were missed. Pure: no I/O, no clock.

A tick is fired when it is due and at most ``grace`` seconds late. Older ticks passed while
no worker ran the scheduler (every worker down, or the workflow had just been registered
by a process that runs none): the schedule's ``missed`` policy says what happens to them —
``skip`` them all, or ``run_once``: fire the latest of them, once, for all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from spane_py.definitions.cron import CronSchedule

MAX_FIRED_PER_ROUND = 100  # a round fires at most this many on-time ticks; the next goes on
MISSED_COUNT_LIMIT = 1000  # missed ticks are counted up to this many (for the event only)


@dataclass(frozen=True, slots=True)
class TickPlan:
    """``fire``: (tick, late) pairs, oldest first — ``late`` marks a run_once catch-up.
    ``missed``: ticks passed by without a run (counted up to ``MISSED_COUNT_LIMIT``),
    the first of them ``first_missed``. ``advance_to``: the new ``last_tick`` (None: no tick
    is due). ``next_tick``: the first tick after what this plan handles."""

    fire: tuple[tuple[datetime, bool], ...] = ()
    missed: int = 0
    first_missed: datetime | None = None
    advance_to: datetime | None = None
    next_tick: datetime | None = None


def plan_ticks(
    cron: CronSchedule,
    *,
    last_tick: datetime | None,
    created_at: datetime,
    missed_policy: str,
    now: datetime,
    grace: timedelta,
) -> TickPlan:
    """What to do at ``now`` for a schedule whose ticks up to ``last_tick`` (or, while it
    is None, up to ``created_at``) were dealt with."""
    baseline = last_tick if last_tick is not None else created_at
    first = cron.next_after(baseline)
    if first > now:
        return TickPlan(next_tick=first)
    cutoff = now - grace
    fire: list[tuple[datetime, bool]] = []
    missed = 0
    first_missed = None
    handled = baseline
    if first <= cutoff:
        latest_late = cron.latest(baseline, cutoff)
        assert latest_late is not None  # ``first`` is one
        missed = len(cron.ticks(baseline, cutoff, limit=MISSED_COUNT_LIMIT))
        first_missed = first
        if missed_policy == "run_once":
            fire.append((latest_late, True))
            missed -= 1
        handled = latest_late
    tick = cron.next_after(max(handled, cutoff))
    while tick <= now and len(fire) < MAX_FIRED_PER_ROUND:
        fire.append((tick, False))
        handled = tick
        tick = cron.next_after(tick)
    return TickPlan(tuple(fire), missed, first_missed, handled, tick)
