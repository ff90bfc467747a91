"""Cron expressions of schedule triggers: validation and tick times, DST-correct. Pure.

Syntax: five fields (``minute hour day month weekday``) or six with **seconds first**
(``second minute hour day month weekday``), as in BullMQ's cron-parser that SPANE uses,
node-cron and Quartz — so ``* * * * * *`` is every second and ``*/10 * * * * *`` every ten
seconds. The ``@hourly``, ``@daily`` (``@midnight``), ``@weekly``, ``@monthly`` and
``@yearly`` (``@annually``) shorthands are accepted. croniter's hashed (``H``) and random
(``R``) fields are refused: every worker process must compute the same ticks.

Tick times are computed in the schedule's IANA timezone (croniter on aware datetimes) and
handled as UTC instants. Around daylight-saving changes:

* spring forward: wall-clock times that do not exist that day (02:00-02:59 in Berlin or
  New York) are not lost: a schedule with any such time runs once, at the first instant
  after the gap (03:00 local). A daily ``30 2 * * *`` job runs at 03:00 that day.
* fall back: a schedule at fixed hours (its hour field is not ``*``) runs once, in the
  first pass of the repeated hour — a daily ``30 2 * * *`` (Berlin) or ``30 1 * * *``
  (New York) job runs once, not twice. A schedule whose hour field is ``*`` (every second,
  minute, or hour) follows real time and runs in both passes: an hourly job runs every
  hour of the 25-hour day.
"""

from __future__ import annotations

import functools
import zoneinfo
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from croniter import CroniterBadDateError, CroniterError, croniter

_ALIASES = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
# A schedule whose next tick is further away than this is refused (croniter's own limit
# is 50 years; "0 0 31 4 *", the 31st of April, never comes).
_MAX_YEARS = 30
_MAX_STEPS = 10_000  # ticks examined by one call before giving up (a bug guard)


def normalize_cron(expression: str) -> str:
    """``expression`` with runs of whitespace collapsed; ``ValueError`` (a message saying
    what is wrong) when it is not a valid, supported cron expression that ever fires."""
    text = " ".join(str(expression).split())
    fields = _fields(text)
    for part in (p for f in fields for p in f.split(",")):
        if part[:1].upper() in ("H", "R"):
            raise ValueError(
                f"cron expression {text!r}: hashed (H) and random (R) fields are not "
                "supported; every worker must compute the same ticks"
            )
    try:
        it = croniter(
            " ".join(fields),
            datetime(2000, 1, 1, tzinfo=UTC),
            second_at_beginning=len(fields) == 6,
            max_years_between_matches=_MAX_YEARS,
        )
        it.get_next(datetime)
    except CroniterBadDateError:
        raise ValueError(f"cron expression {text!r} never matches a date") from None
    except (CroniterError, ValueError, KeyError) as exc:
        raise ValueError(f"{text!r} is not a valid cron expression: {exc}") from None
    return text


def _fields(text: str) -> list[str]:
    if text.startswith("@"):
        expanded = _ALIASES.get(text.lower())
        if expanded is None:
            raise ValueError(
                f"unknown cron shorthand {text!r}; use one of {', '.join(sorted(_ALIASES))}"
            )
        return expanded.split()
    fields = text.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"cron expression {text!r} has {len(fields)} field(s); write 5 (minute hour day "
            "month weekday) or 6 with seconds first (second minute hour day month weekday)"
        )
    return fields


def check_timezone(name: str) -> str:
    """``name`` if it is an IANA timezone this machine knows; ``ValueError`` otherwise."""
    try:
        zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        hint = _similar_timezone(name)
        raise ValueError(
            f"unknown timezone {name!r}: use an IANA name such as 'Europe/Berlin' or 'UTC'"
            + (f" (did you mean {hint!r}?)" if hint else "")
        ) from None
    return name


def _similar_timezone(name: str) -> str | None:
    lowered = name.lower()
    return next((z for z in _available() if z.lower() == lowered), None)


@functools.cache
def _available() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


@dataclass(frozen=True, slots=True)
class CronSchedule:
    """A valid cron expression in a timezone: its ticks, as UTC instants."""

    expression: str
    timezone: str
    parts: tuple[str, ...] = field(repr=False, compare=False)  # the fields, shorthand expanded
    zone: zoneinfo.ZoneInfo = field(repr=False, compare=False)

    @classmethod
    def parse(cls, expression: str, timezone: str = "UTC") -> CronSchedule:
        """``ValueError`` when the expression or the timezone is invalid."""
        text = normalize_cron(expression)
        check_timezone(timezone)
        return cls(text, timezone, tuple(_fields(text)), zoneinfo.ZoneInfo(timezone))

    @property
    def has_seconds(self) -> bool:
        return len(self.parts) == 6

    @property
    def every_hour(self) -> bool:
        """The hour field is ``*``: the schedule follows real time through a repeated hour."""
        return self.parts[2 if self.has_seconds else 1] == "*"

    def next_after(self, after: datetime) -> datetime:
        """The first tick strictly after ``after`` (an aware datetime), in UTC."""
        it = croniter(
            " ".join(self.parts),
            after.astimezone(self.zone),
            second_at_beginning=self.has_seconds,
            max_years_between_matches=_MAX_YEARS,
        )
        for _ in range(_MAX_STEPS):
            tick = it.get_next(datetime).astimezone(UTC)
            if tick > after and (self.every_hour or not self._second_pass(tick)):
                return tick
        raise ValueError(f"no tick of {self.expression!r} found after {after.isoformat()}")

    def _second_pass(self, tick: datetime) -> bool:
        """The tick falls in the second pass of a repeated (fall-back) hour."""
        local = tick.astimezone(self.zone)
        return local.fold == 1 and local.replace(fold=0).utcoffset() != local.utcoffset()

    def ticks(self, after: datetime, until: datetime, *, limit: int) -> list[datetime]:
        """Ticks in ``(after, until]``, oldest first, at most ``limit`` of them."""
        out: list[datetime] = []
        tick = self.next_after(after)
        while tick <= until and len(out) < limit:
            out.append(tick)
            tick = self.next_after(tick)
        return out

    def latest(self, after: datetime, until: datetime) -> datetime | None:
        """The last tick in ``(after, until]`` (None: there is none), found without walking
        every tick since ``after``: a window before ``until`` doubles until it holds one."""
        if self.next_after(after) > until:
            return None
        window = timedelta(seconds=1)
        while True:
            start = max(until - window, after)
            tick = self.next_after(start)
            if tick <= until:
                while (following := self.next_after(tick)) <= until:
                    tick = following
                return tick
            window *= 2
