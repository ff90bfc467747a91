"""Cron expressions of schedule triggers: what is accepted, and tick times around DST."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from spane_py.definitions.cron import CronSchedule, check_timezone, normalize_cron
from spane_py.definitions.loading import parse_definition
from spane_py.definitions.models import ScheduleTrigger
from spane_py.errors import WorkflowValidationError

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")


def local_ticks(cron: str, tz: ZoneInfo, day: datetime, hours: float = 24) -> list[str]:
    """The ticks from local midnight of ``day`` for ``hours`` real hours, as local
    wall-clock times with their UTC offset."""
    schedule = CronSchedule.parse(cron, str(tz))
    start = day.replace(tzinfo=tz).astimezone(UTC)
    ticks = schedule.ticks(start, start + timedelta(hours=hours), limit=10_000)
    return [t.astimezone(tz).strftime("%H:%M:%S%z") for t in ticks]


class TestValidation:
    @pytest.mark.parametrize(
        ("written", "kept"),
        [
            ("0 9 * * *", "0 9 * * *"),
            ("  */5   *  * * MON-FRI ", "*/5 * * * MON-FRI"),
            ("* * * * * *", "* * * * * *"),
            ("@daily", "@daily"),
            ("0 0 29 2 *", "0 0 29 2 *"),  # leap days come
            ("0 12 * * THU,FRI", "0 12 * * THU,FRI"),  # names with H and R in them
        ],
    )
    def test_accepted(self, written: str, kept: str) -> None:
        assert normalize_cron(written) == kept

    @pytest.mark.parametrize(
        ("cron", "message"),
        [
            ("* * *", "has 3 field(s); write 5"),
            ("* * * * * * *", "has 7 field(s)"),
            ("61 * * * *", "is not a valid cron expression"),
            ("x * * * *", "is not a valid cron expression"),
            ("*/0 * * * *", "is not a valid cron expression"),
            ("0 0 31 4 *", "never matches a date"),
            ("H * * * *", "hashed (H) and random (R) fields are not supported"),
            ("0 R * * *", "hashed (H) and random (R)"),
            ("@reboot", "unknown cron shorthand '@reboot'"),
        ],
    )
    def test_refused_with_a_clear_message(self, cron: str, message: str) -> None:
        with pytest.raises(ValueError, match="cron") as exc:
            normalize_cron(cron)
        assert message in str(exc.value)

    def test_timezones(self) -> None:
        assert check_timezone("America/New_York") == "America/New_York"
        with pytest.raises(ValueError, match=r"did you mean 'Europe/Berlin'\?"):
            check_timezone("europe/berlin")
        for bad in ("Mars/Base", "", "../etc/passwd", "/etc/localtime"):
            with pytest.raises(ValueError, match="unknown timezone"):
                check_timezone(bad)

    def test_register_time_errors_name_the_trigger(self) -> None:
        for trigger, message in [
            ({"type": "schedule", "config": {"cron": "61 * * * *"}}, "not a valid cron"),
            ({"type": "schedule", "cron": "* * * * *", "timezone": "Nowhere/X"}, "timezone"),
            ({"type": "schedule", "cron": "* * * * *", "missed": "twice"}, "missed"),
        ]:
            with pytest.raises(WorkflowValidationError, match=message) as exc:
                parse_definition(
                    {"id": "w", "nodes": [{"id": "a", "type": "t"}], "triggers": [trigger]}
                )
            assert "triggers.0.schedule" in str(exc.value)

    def test_missed_policy_and_its_spane_spelling(self) -> None:
        assert ScheduleTrigger(cron="* * * * *").missed == "skip"
        trigger = ScheduleTrigger.model_validate(
            {"config": {"cron": "@hourly", "missed": "runOnce"}}
        )
        assert trigger.missed == "run_once"
        # the default stays out of dumps: definitions saved before it keep their hash
        assert "missed" not in ScheduleTrigger(cron="* * * * *").model_dump()
        assert trigger.to_spane_json()["config"]["missed"] == "run_once"


class TestTicks:
    def test_seconds_come_first(self) -> None:
        every_ten = CronSchedule.parse("*/10 * * * * *")
        t0 = datetime(2026, 1, 1, 12, 0, 3, tzinfo=UTC)
        assert every_ten.ticks(t0, t0 + timedelta(seconds=30), limit=10) == [
            datetime(2026, 1, 1, 12, 0, s, tzinfo=UTC) for s in (10, 20, 30)
        ]
        # a 5-field expression ticks on whole minutes
        minutely = CronSchedule.parse("* * * * *")
        assert minutely.next_after(t0) == datetime(2026, 1, 1, 12, 1, tzinfo=UTC)

    def test_next_is_strictly_after(self) -> None:
        minutely = CronSchedule.parse("* * * * *")
        t = datetime(2026, 1, 1, 12, 1, tzinfo=UTC)
        assert minutely.next_after(t) == t + timedelta(minutes=1)

    def test_timezone_shifts_ticks(self) -> None:
        nine = CronSchedule.parse("0 9 * * *", "America/New_York")
        after = datetime(2026, 1, 15, tzinfo=UTC)
        assert nine.next_after(after) == datetime(2026, 1, 15, 14, 0, tzinfo=UTC)  # EST
        summer = datetime(2026, 7, 15, tzinfo=UTC)
        assert nine.next_after(summer) == datetime(2026, 7, 15, 13, 0, tzinfo=UTC)  # EDT

    def test_latest_finds_the_last_tick_without_walking_them_all(self) -> None:
        per_second = CronSchedule.parse("* * * * * *")
        after = datetime(2026, 1, 1, tzinfo=UTC)
        until = after + timedelta(days=30, seconds=0.5)
        assert per_second.latest(after, until) == after + timedelta(days=30)
        assert per_second.latest(until, until + timedelta(seconds=0.2)) is None
        yearly = CronSchedule.parse("0 0 1 1 *")
        assert yearly.latest(after, after + timedelta(days=800)) == datetime(2028, 1, 1, tzinfo=UTC)


class TestDaylightSaving:
    """Spring forward: 2026-03-29 in Berlin (02:00 -> 03:00), 2026-03-08 in New York.
    Fall back: 2026-10-25 in Berlin (03:00 -> 02:00), 2026-11-01 in New York (02:00 -> 01:00)."""

    def test_daily_job_in_the_skipped_hour_runs_once_when_clocks_jump(self) -> None:
        # 02:30 does not exist that day: the job runs at 03:00, once; the next day as usual
        assert local_ticks("30 2 * * *", BERLIN, datetime(2026, 3, 29), hours=47) == [
            "03:00:00+0200",
            "02:30:00+0200",
        ]
        assert local_ticks("30 2 * * *", NEW_YORK, datetime(2026, 3, 8)) == ["03:00:00-0400"]

    def test_daily_job_in_the_repeated_hour_runs_once(self) -> None:
        assert local_ticks("30 2 * * *", BERLIN, datetime(2026, 10, 25), hours=49) == [
            "02:30:00+0200",  # the first 02:30 (summer time) only
            "02:30:00+0100",  # the next day
        ]
        assert local_ticks("30 1 * * *", NEW_YORK, datetime(2026, 11, 1)) == ["01:30:00-0400"]
        assert local_ticks("*/20 2 * * *", BERLIN, datetime(2026, 10, 25)) == [
            "02:00:00+0200",
            "02:20:00+0200",
            "02:40:00+0200",
        ]

    @pytest.mark.parametrize("day", [datetime(2026, 3, 29), datetime(2026, 10, 25)])
    @pytest.mark.parametrize("cron", ["0 * * * *", "*/15 * * * *", "0 * * * * *"])
    def test_schedules_every_hour_follow_real_time(self, day: datetime, cron: str) -> None:
        """Hourly, quarter-hourly, per-minute: evenly spaced through both changes (an
        hourly job runs 23 times on the short day, 25 on the long one)."""
        schedule = CronSchedule.parse(cron, "Europe/Berlin")
        start = day.replace(tzinfo=BERLIN).astimezone(UTC)
        end = (day + timedelta(days=1)).replace(tzinfo=BERLIN).astimezone(UTC)
        ticks = schedule.ticks(start - timedelta(seconds=1), end - timedelta(seconds=1), limit=2000)
        gaps = {b - a for a, b in itertools.pairwise(ticks)}
        assert len(gaps) == 1, sorted(gaps)
        hours = (end - start) / timedelta(hours=1)
        assert hours in (23, 25)
        assert len(ticks) == hours * (timedelta(hours=1) / gaps.pop())

    def test_per_second_schedule_is_continuous_through_both_changes(self) -> None:
        every_second = CronSchedule.parse("* * * * * *", "America/New_York")
        for change in (datetime(2026, 3, 8, 7, tzinfo=UTC), datetime(2026, 11, 1, 6, tzinfo=UTC)):
            ticks = every_second.ticks(
                change - timedelta(seconds=5), change + timedelta(seconds=5), limit=20
            )
            assert ticks == [change + timedelta(seconds=s) for s in range(-4, 6)]
