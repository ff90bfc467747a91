"""The engine's clocks (spane_py/clock.py): the system's, and one that skips ahead."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest

from spane_py import Clock, SkippingClock, SystemClock


def test_the_system_clock_is_aware_utc_and_a_clock() -> None:
    now = SystemClock().now()
    assert now.tzinfo is UTC
    assert isinstance(SystemClock(), Clock)
    assert isinstance(SkippingClock(), Clock)


def test_a_skipping_clock_moves_forward_by_what_was_skipped() -> None:
    clock = SkippingClock()
    assert clock.skipped == timedelta(0)
    before = datetime.now(UTC)
    clock.skip(3600)
    clock.skip(timedelta(minutes=30))
    assert clock.skipped == timedelta(hours=1, minutes=30)
    assert clock.now() >= before + timedelta(hours=1, minutes=30)


def test_skip_to_moves_to_a_time_ahead_and_never_back() -> None:
    clock = SkippingClock()
    target = datetime.now(UTC) + timedelta(days=2)
    moved = clock.skip_to(target)
    assert timedelta(days=1, hours=23) < moved <= timedelta(days=2)
    assert clock.now() >= target
    assert clock.skip_to(target - timedelta(days=1)) == timedelta(0)  # passed: nothing
    assert clock.skipped == moved


@pytest.mark.parametrize("bad", [-1, -0.001, timedelta(seconds=-1)])
def test_skipping_backwards_is_refused(bad: float | timedelta) -> None:
    with pytest.raises(ValueError, match="backwards"):
        SkippingClock().skip(bad)


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_skipping_a_non_finite_time_is_refused(bad: float) -> None:
    with pytest.raises(ValueError, match="cannot skip"):
        SkippingClock().skip(bad)


@pytest.mark.parametrize("bad", ["10", True, None])
def test_skipping_something_else_is_refused(bad: object) -> None:
    with pytest.raises(TypeError, match="seconds or a timedelta"):
        SkippingClock().skip(bad)  # type: ignore[arg-type]


def test_skip_to_needs_an_aware_time() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        SkippingClock().skip_to(datetime(2030, 1, 1))  # naive: the point of the test
